import type { FastifyRequest } from 'fastify'
import { FST_CHAT_INVALID_OPTION } from './errors.js'
import { isRoomName } from './protocol.js'
import type { HistoryStore } from './stores/history-store.js'
import type { User } from './wire.js'

/** What `identify` returns to accept a connection. */
export interface Identity {
  /** Stable user id; a random id is generated when missing. */
  id?: string
  /** Display name; the `name` query parameter or a guest name is used when missing. */
  name?: string
}

/** The connected client, as `onMessage` sees it. */
export interface ChatClient {
  readonly id: string
  readonly name: string
  readonly rooms: ReadonlySet<string>
  readonly request: FastifyRequest
}

/** A message on its way to a room, before it is stored. */
export interface OutgoingMessage {
  room: string
  text: string
  cid?: string
}

/** Options of the fastify-chat plugin. */
export interface FastifyChatOptions {
  /** Route of the WebSocket endpoint. @default '/chat' */
  path?: string
  /** Whether the sender receives its own messages. @default true */
  echo?: boolean
  /** Room every client joins on connect; `null` for none. @default 'lobby' */
  defaultRoom?: string | null
  /** Messages kept and replayed per room. @default 100 */
  historySize?: number
  /** Longest message text, in Unicode characters. @default 2000 */
  maxMessageLength?: number
  /** Rooms one client may be in at once, the auto-joined room included. @default 20 */
  maxRoomsPerClient?: number
  /** Accepts (with an identity) or refuses (`false` or a throw) the upgrade, before any socket opens. */
  identify?: (request: FastifyRequest) => Identity | false | Promise<Identity | false>
  /** Sees every message before it is stored: return a changed message, or `false` to drop it. */
  onMessage?: (message: OutgoingMessage, client: ChatClient) =>
    OutgoingMessage | boolean | undefined | Promise<OutgoingMessage | boolean | undefined>
  /** Where history lives. @default an in-memory store of `historySize` per room */
  store?: HistoryStore
  /** Serve the browser client at `<path>/client.js`. @default true */
  serveClient?: boolean
}

/** The options after validation: complete and frozen. */
export interface ResolvedOptions {
  readonly path: string
  readonly echo: boolean
  readonly defaultRoom: string | null
  readonly historySize: number
  readonly maxMessageLength: number
  readonly maxRoomsPerClient: number
  readonly identify: NonNullable<FastifyChatOptions['identify']> | null
  readonly onMessage: NonNullable<FastifyChatOptions['onMessage']> | null
  readonly store: HistoryStore | null
  readonly serveClient: boolean
}

/** Defaults, in the order the README lists them. */
export const defaults = Object.freeze({
  path: '/chat',
  echo: true,
  defaultRoom: 'lobby',
  historySize: 100,
  maxMessageLength: 2000,
  maxRoomsPerClient: 20,
  serveClient: true
})

/** Sender used by `app.chat.broadcast` when none is given. */
export const SYSTEM_USER: Readonly<User> = Object.freeze({ id: 'system', name: 'system' })

function integer (name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new FST_CHAT_INVALID_OPTION(name, `must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

function optionalFunction<T> (name: string, value: T | undefined): NonNullable<T> | null {
  if (value === undefined) return null
  if (typeof value !== 'function') throw new FST_CHAT_INVALID_OPTION(name, 'must be a function')
  return value
}

const STORE_METHODS = ['append', 'recent', 'since', 'epoch'] as const

/** Validates the user's options and returns a new, complete, frozen object. */
export function resolveOptions (opts: FastifyChatOptions = {}): ResolvedOptions {
  if (typeof opts !== 'object' || opts === null) {
    throw new FST_CHAT_INVALID_OPTION('options', 'must be an object')
  }

  // `undefined` means "use the default"; anything else, null included, must be valid.
  const pick = <K extends keyof typeof defaults>(key: K): unknown =>
    opts[key] === undefined ? defaults[key] : opts[key]

  const path = pick('path')
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new FST_CHAT_INVALID_OPTION('path', 'must be a string starting with "/"')
  }

  const echo = pick('echo')
  if (typeof echo !== 'boolean') throw new FST_CHAT_INVALID_OPTION('echo', 'must be a boolean')

  const defaultRoom = pick('defaultRoom')
  if (defaultRoom !== null && !isRoomName(defaultRoom)) {
    throw new FST_CHAT_INVALID_OPTION('defaultRoom', 'must be null or match ^[A-Za-z0-9_-]{1,64}$')
  }

  const store = opts.store === undefined ? null : opts.store
  if (opts.store !== undefined) {
    if (typeof store !== 'object' || store === null) throw new FST_CHAT_INVALID_OPTION('store', 'must be a HistoryStore object')
    for (const method of STORE_METHODS) {
      if (typeof (store as unknown as Record<string, unknown>)[method] !== 'function') {
        throw new FST_CHAT_INVALID_OPTION('store', `must implement HistoryStore (missing ${method}())`)
      }
    }
  }

  const serveClient = pick('serveClient')
  if (typeof serveClient !== 'boolean') throw new FST_CHAT_INVALID_OPTION('serveClient', 'must be a boolean')

  return Object.freeze({
    path,
    echo,
    defaultRoom,
    historySize: integer('historySize', pick('historySize'), 0, 100_000),
    maxMessageLength: integer('maxMessageLength', pick('maxMessageLength'), 1, 1_000_000),
    maxRoomsPerClient: integer('maxRoomsPerClient', pick('maxRoomsPerClient'), 1, 10_000),
    identify: optionalFunction('identify', opts.identify),
    onMessage: optionalFunction('onMessage', opts.onMessage),
    store,
    serveClient
  })
}
