import type { FastifyRequest } from 'fastify'
import type { Adapter } from './broker/adapter.js'
import type { ChatClient } from './chat/client-view.js'
import { FST_CHAT_INVALID_OPTION } from './errors.js'
import { compileMetaSchema } from './chat/meta-schema.js'
import type { MetaSchema } from './chat/meta-schema.js'
import { resolveAdapter } from './options/adapter.js'
import { MAX_TIMER_MS, optionalFunction, resolveOrigins, resolveRateLimit, resolveSecret, resolveSignals } from './options/checks.js'
import { ROOM_RULE, isRoomName } from './protocol/text.js'
import type { RateLimit } from './transport/rate-limit.js'
import type { HistoryStore } from './stores/history-store.js'
import { MAX_HISTORY_PAGE, MAX_MEMBERS_PAGE } from './protocol/wire.js'
import type { ChatMessage, User } from './protocol/wire.js'
import { integerOption as integer, refuseUnknownKeys, shown } from './validate.js'

/** What `identify` returns to accept a connection. */
export interface Identity {
  /** Stable user id; a random id is generated when missing. */
  id?: string
  /** Display name; the `name` query parameter or a guest name is used when missing. */
  name?: string
  /** Anything JSON-serialisable the app wants its hooks to see of this client, as `client.data`. */
  data?: unknown
  /** When the session ends, in milliseconds since the Unix epoch: the socket is then closed with 4001 unless refreshed. */
  expiresAt?: number
}

/** What `authorize` is asked: may `client` do `action` in `room`? */
export interface AuthorizeRequest {
  /**
   * `join`: join `room` (also a resume); `publish`: send a message to it (or
   * edit one's own); `signal`: send it a signal (typing); `direct`: open the
   * direct room with `to`; `history`: read back through it (a member's
   * `history` request); `moderate`: edit or delete `message`, which another
   * user sent.
   */
  action: 'join' | 'publish' | 'signal' | 'direct' | 'history' | 'moderate'
  room: string
  client: ChatClient
  /** For `direct`: the other user's id. */
  to?: string
  /** For `moderate`: the message to be edited or deleted. */
  message?: ChatMessage
}

/** What `refresh` returns to extend a session: when it now ends, in milliseconds since the Unix epoch. */
export interface Refreshed {
  expiresAt: number
}

/** A message on its way to a room, before it is stored. */
export interface OutgoingMessage {
  room: string
  text: string
  cid?: string
  /** The sender's structured data, already checked against `maxMetaBytes` and `metaSchema`. */
  meta?: Record<string, unknown>
  /** Set when the text is an edit: the offset of the message it replaces. */
  of?: number
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
  /** Largest `meta` of a message, in bytes of its JSON (UTF-8); a larger one gets `too_large`. @default 2048 */
  maxMetaBytes?: number
  /**
   * JSON Schema every message's `meta` must match, compiled once at register
   * with Ajv (strict; nothing stripped, defaulted or coerced). A message
   * whose `meta` fails it gets `invalid_message` naming the failing path.
   * @default any JSON object
   */
  metaSchema?: Record<string, unknown>
  /** Rooms one client may be in at once, the auto-joined room included. @default 20 */
  maxRoomsPerClient?: number
  /** Accepts (with an identity) or refuses (`false` or a throw) the upgrade, before any socket opens. */
  identify?: (request: FastifyRequest) => Identity | false | Promise<Identity | false>
  /**
   * Decides every join (including the auto-join and every resume), every
   * message (before `onMessage`), every signal and every direct conversation opened: `true`
   * allows it; anything else, or a throw, refuses it with a `forbidden` error.
   * @default everything is allowed
   */
  authorize?: (request: AuthorizeRequest) => boolean | Promise<boolean>
  /**
   * Answers a client's `refresh` frame: `{ expiresAt }` extends its session,
   * `false` closes the socket with 4001 at once. Without it, `refresh` frames
   * get `unknown_type`.
   */
  refresh?: (token: string, client: ChatClient) => Refreshed | false | Promise<Refreshed | false>
  /**
   * Sees every message before it is stored: return a changed message (its
   * `text` and `meta` are stored; without a `meta` key the sender's stays;
   * the meta is checked again like the sender's), or `false` to drop it.
   */
  onMessage?: (message: OutgoingMessage, client: ChatClient) =>
    OutgoingMessage | boolean | undefined | void | Promise<OutgoingMessage | boolean | undefined | void>
  /**
   * Milliseconds after a message's `ts` during which it may be edited; a
   * later edit gets `edit_window_expired`. Deletes are not limited. 0 turns it off.
   * @default 0
   */
  editWindowMs?: number
  /** Where history lives, with the in-process adapter. @default an in-memory store of `historySize` per room */
  store?: HistoryStore
  /** Serve the browser client at `<path>/client.js`, and the modules it imports under `<path>/client/`. @default true */
  serveClient?: boolean
  /** Largest frame a client may send, in bytes; a larger one closes the socket with 1009. @default 65536 */
  maxPayload?: number
  /** Milliseconds between pings; a socket that missed the previous pong is terminated. 0 turns it off. @default 30000 */
  heartbeatInterval?: number
  /** Bytes that may wait in one socket's send buffer; past this it is closed with 1013. @default 1048576 */
  maxBufferedBytes?: number
  /** Per-connection token bucket for incoming frames, or `false` for none. @default { messages: 10, intervalMs: 1000, burst: 20 } */
  rateLimit?: RateLimit | false
  /** Names of the `signal` frames clients may send (others get `unknown_signal`); `[]` turns signals off. @default ['typing'] */
  signals?: readonly string[]
  /**
   * Per-connection token bucket for `signal` frames, on top of `rateLimit`,
   * or `false` for none. Signals over it are dropped and counted, with no
   * error frame. @default { messages: 5, intervalMs: 1000, burst: 5 }
   */
  signalRate?: RateLimit | false
  /** Open chat sockets allowed on this server; past this the upgrade gets 503. @default 10000 */
  maxConnections?: number
  /** Open chat sockets allowed per client IP (`request.ip`); past this the upgrade gets 429. 0 turns it off. @default 0 */
  maxConnectionsPerIp?: number
  /** Origins allowed to open sockets, or a function deciding. @default same host as the request, or no Origin header */
  allowedOrigins?: string[] | ((origin: string, request: FastifyRequest) => boolean | Promise<boolean>)
  /** Milliseconds `app.close()` (and any server-side close) waits for the close handshake before terminating. @default 2000 */
  closeTimeout?: number
  /** Milliseconds a user whose last socket left a room stays present, so a quick reconnect does not flash leave/join. @default 1000 */
  presenceGraceMs?: number
  /** Users listed in a `joined` (the rest are paged with `members`); `count` always tells how many there are. @default 100 */
  presenceListMax?: number
  /** Above this many users in a room, members get `occupancy` counts instead of per-user presence events. @default 200 */
  presenceEventsMax?: number
  /** Milliseconds between two `occupancy` frames of one room, while its count changes. @default 1000 */
  occupancyIntervalMs?: number
  /** Joins processed at once on this server; more wait their turn in order (none is refused). @default 256 */
  maxConcurrentJoins?: number
  /** Most messages one `history` request (a scroll back) may ask for, 1 to 1000. @default 100 */
  maxHistoryPage?: number
  /**
   * Key that signs resume tokens, at least 32 characters; give every server
   * of a chat the same one. @default the adapter's (Redis, or the SQLite
   * file), else a random one per process
   */
  secret?: string
  /** Fan-out between servers (and their shared history); see `redisAdapter`. @default in-process */
  adapter?: Adapter
}

/** The options after validation: complete and frozen. */
export interface ResolvedOptions {
  readonly path: string
  readonly echo: boolean
  readonly defaultRoom: string | null
  readonly historySize: number
  readonly maxMessageLength: number
  readonly maxMetaBytes: number
  /** The compiled `metaSchema`, or `null` for none. */
  readonly metaSchema: MetaSchema | null
  readonly maxRoomsPerClient: number
  readonly identify: NonNullable<FastifyChatOptions['identify']> | null
  readonly authorize: NonNullable<FastifyChatOptions['authorize']> | null
  readonly refresh: NonNullable<FastifyChatOptions['refresh']> | null
  readonly onMessage: NonNullable<FastifyChatOptions['onMessage']> | null
  readonly editWindowMs: number
  readonly serveClient: boolean
  readonly maxPayload: number
  readonly heartbeatInterval: number
  readonly maxBufferedBytes: number
  readonly rateLimit: Readonly<RateLimit> | null
  readonly signals: ReadonlySet<string>
  readonly signalRate: Readonly<RateLimit> | null
  readonly maxConnections: number
  readonly maxConnectionsPerIp: number
  /** Normalized origins, a function, or `null` for the same-host rule. */
  readonly allowedOrigins: ReadonlySet<string> | ((origin: string, request: FastifyRequest) => boolean | Promise<boolean>) | null
  readonly closeTimeout: number
  readonly presenceGraceMs: number
  readonly presenceListMax: number
  readonly presenceEventsMax: number
  readonly occupancyIntervalMs: number
  readonly maxConcurrentJoins: number
  readonly maxHistoryPage: number
  readonly secret: string | null
  /** The given adapter, or an in-process one over the given (or a new in-memory) store. */
  readonly adapter: Adapter
}

/** Defaults, in the order the README lists them. */
export const defaults = Object.freeze({
  path: '/chat',
  echo: true,
  defaultRoom: 'lobby',
  historySize: 100,
  maxMessageLength: 2000,
  maxMetaBytes: 2048,
  maxRoomsPerClient: 20,
  editWindowMs: 0,
  serveClient: true,
  maxPayload: 64 * 1024,
  heartbeatInterval: 30_000,
  maxBufferedBytes: 1024 * 1024,
  rateLimit: Object.freeze({ messages: 10, intervalMs: 1000, burst: 20 }) as RateLimit | false,
  signals: Object.freeze(['typing']) as readonly string[],
  signalRate: Object.freeze({ messages: 5, intervalMs: 1000, burst: 5 }) as RateLimit | false,
  maxConnections: 10_000,
  maxConnectionsPerIp: 0,
  closeTimeout: 2000,
  presenceGraceMs: 1000,
  presenceListMax: 100,
  presenceEventsMax: 200,
  occupancyIntervalMs: 1000,
  maxConcurrentJoins: 256,
  maxHistoryPage: 100
})

/** Sender used by `app.chat.broadcast` when none is given. */
export const SYSTEM_USER: Readonly<User> = Object.freeze({ id: 'system', name: 'system' })

// Every option, and the register options Fastify itself reads.
const KNOWN_KEYS: ReadonlySet<string> = new Set([
  'path', 'echo', 'defaultRoom', 'historySize', 'maxMessageLength', 'maxMetaBytes', 'metaSchema', 'maxRoomsPerClient', 'identify', 'authorize',
  'refresh', 'onMessage', 'editWindowMs',
  'store', 'serveClient', 'maxPayload', 'heartbeatInterval', 'maxBufferedBytes', 'rateLimit', 'signals', 'signalRate', 'maxConnections',
  'maxConnectionsPerIp', 'allowedOrigins', 'closeTimeout', 'presenceGraceMs', 'adapter',
  'presenceListMax', 'presenceEventsMax', 'occupancyIntervalMs', 'maxConcurrentJoins', 'secret',
  'maxHistoryPage',
  'prefix', 'logLevel', 'logSerializers'
])

/** Validates the user's options and returns a new, complete, frozen object. */
export function resolveOptions (opts: FastifyChatOptions = {}): ResolvedOptions {
  if (typeof opts !== 'object' || opts === null) {
    throw new FST_CHAT_INVALID_OPTION('options', `must be an object, got ${shown(opts)}`)
  }
  refuseUnknownKeys(opts, KNOWN_KEYS)

  // `undefined` means "use the default"; anything else, null included, must be valid.
  const pick = <K extends keyof typeof defaults>(key: K): unknown =>
    opts[key] === undefined ? defaults[key] : opts[key]

  const path = pick('path')
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new FST_CHAT_INVALID_OPTION('path', `must be a string starting with "/", got ${shown(path)}`)
  }

  const echo = pick('echo')
  if (typeof echo !== 'boolean') throw new FST_CHAT_INVALID_OPTION('echo', `must be a boolean, got ${shown(echo)}`)

  const defaultRoom = pick('defaultRoom')
  if (defaultRoom !== null && !isRoomName(defaultRoom)) {
    throw new FST_CHAT_INVALID_OPTION('defaultRoom', `must be null or a room name (${ROOM_RULE}), got ${shown(defaultRoom)}`)
  }

  const serveClient = pick('serveClient')
  if (typeof serveClient !== 'boolean') throw new FST_CHAT_INVALID_OPTION('serveClient', `must be a boolean, got ${shown(serveClient)}`)

  const heartbeat = integer('heartbeatInterval', pick('heartbeatInterval'), 0, MAX_TIMER_MS)
  if (heartbeat !== 0 && heartbeat < 10) throw new FST_CHAT_INVALID_OPTION('heartbeatInterval', `must be 0 (off) or at least 10, got ${heartbeat}`)
  const historySize = integer('historySize', pick('historySize'), 0, 100_000)

  return Object.freeze({
    path,
    echo,
    defaultRoom,
    historySize,
    maxMessageLength: integer('maxMessageLength', pick('maxMessageLength'), 1, 1_000_000),
    // 2 bytes: `{}`.
    maxMetaBytes: integer('maxMetaBytes', pick('maxMetaBytes'), 2, 1024 * 1024),
    metaSchema: compileMetaSchema(opts.metaSchema),
    maxRoomsPerClient: integer('maxRoomsPerClient', pick('maxRoomsPerClient'), 1, 10_000),
    identify: optionalFunction('identify', opts.identify),
    authorize: optionalFunction('authorize', opts.authorize),
    refresh: optionalFunction('refresh', opts.refresh),
    onMessage: optionalFunction('onMessage', opts.onMessage),
    editWindowMs: integer('editWindowMs', pick('editWindowMs'), 0, Number.MAX_SAFE_INTEGER),
    serveClient,
    maxPayload: integer('maxPayload', pick('maxPayload'), 16, 100 * 1024 * 1024),
    heartbeatInterval: heartbeat,
    maxBufferedBytes: integer('maxBufferedBytes', pick('maxBufferedBytes'), 1, Number.MAX_SAFE_INTEGER),
    rateLimit: resolveRateLimit(pick('rateLimit')),
    signals: resolveSignals(pick('signals')),
    signalRate: resolveRateLimit(pick('signalRate'), 'signalRate'),
    maxConnections: integer('maxConnections', pick('maxConnections'), 1, 10_000_000),
    maxConnectionsPerIp: integer('maxConnectionsPerIp', pick('maxConnectionsPerIp'), 0, 10_000_000),
    allowedOrigins: resolveOrigins(opts.allowedOrigins),
    closeTimeout: integer('closeTimeout', pick('closeTimeout'), 0, MAX_TIMER_MS),
    presenceGraceMs: integer('presenceGraceMs', pick('presenceGraceMs'), 0, MAX_TIMER_MS),
    presenceListMax: integer('presenceListMax', pick('presenceListMax'), 0, MAX_MEMBERS_PAGE),
    presenceEventsMax: integer('presenceEventsMax', pick('presenceEventsMax'), 0, 10_000_000),
    occupancyIntervalMs: integer('occupancyIntervalMs', pick('occupancyIntervalMs'), 10, MAX_TIMER_MS),
    maxConcurrentJoins: integer('maxConcurrentJoins', pick('maxConcurrentJoins'), 1, 1_000_000),
    maxHistoryPage: integer('maxHistoryPage', pick('maxHistoryPage'), 1, MAX_HISTORY_PAGE),
    secret: resolveSecret(opts.secret),
    // Last: the default adapter is made only once every other option is valid.
    adapter: resolveAdapter(opts, historySize)
  })
}
