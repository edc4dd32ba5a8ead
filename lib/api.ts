import type { Broker } from './broker/broker.js'
import type { PageRequest, PresencePage } from './broker/presence.js'
import type { Hub } from './chat/hub.js'
import { checkAppMeta } from './chat/meta-schema.js'
import type { MetaSchema } from './chat/meta-schema.js'
import type { Moderation } from './chat/moderation.js'
import type { PresenceTracker } from './chat/presence-tracker.js'
import { FST_CHAT_CLOSED, FST_CHAT_INVALID_ARGUMENT, FST_CHAT_INVALID_MESSAGE, FST_CHAT_INVALID_ROOM, FST_CHAT_UNSUPPORTED } from './errors.js'
import { SYSTEM_USER, defaults } from './options.js'
import { isCursor, isPageLimit } from './protocol/codec.js'
import { isRoomName, isWellFormed, textProblem } from './protocol/text.js'
import { MAX_CURSOR_LENGTH, MAX_MEMBERS_PAGE, MAX_USER_ID_LENGTH } from './protocol/wire.js'
import type { ChatMessage, User } from './protocol/wire.js'
import type { OlderPage } from './stores/history-store.js'
import type { ChatStats, Stats } from './stats.js'
import type { Connections } from './transport/connections.js'
import type { NewMessage } from './stores/history-store.js'

/** Options of `app.chat.broadcast`. */
export interface BroadcastOptions {
  /** Sender shown to clients. @default { id: 'system', name: 'system' } */
  from?: User
  /** Structured data for clients, checked like a sender's (`maxMetaBytes`, `metaSchema`). @default none */
  meta?: Record<string, unknown>
}

/** Options of `app.chat.history`. */
export interface HistoryOptions {
  /** Only messages after this offset. */
  since?: number
  /** At most this many messages. @default historySize */
  limit?: number
  /** Paging back takes {@link HistoryBeforeOptions} instead. */
  before?: undefined
}

/** Options of `app.chat.history` paging back: a page of older messages, as a client's `history` request gets. */
export interface HistoryBeforeOptions {
  /** Only messages with an offset below this one, an integer >= 0. */
  before: number
  /** At most this many messages, from 1 to `maxHistoryPage`. @default maxHistoryPage */
  limit?: number
  since?: undefined
}

/** Options of `app.chat.presence`. */
export interface PresenceOptions {
  /** At most this many users, from 1 to 1000. @default presenceListMax (1 when that is 0) */
  limit?: number
  /** Where to go on from: the `next` of an earlier page. @default the first page */
  after?: string
}

/** Options of `app.chat.disconnect` and `app.chat.removeFromRoom`. */
export interface ModerationOptions {
  /** Told to the client: the close reason (at most 123 bytes), or the `message` of its `left`. @default 'disconnected' for disconnect, none for removeFromRoom */
  reason?: string
}

/** Whom `app.chat.disconnect` closes: every socket of a user, or one socket by its `clientId`. */
export type DisconnectTarget = { userId: string, clientId?: undefined } | { clientId: string, userId?: undefined }

/** The `app.chat` decorator. */
export interface Chat {
  /** Stores a message and sends it to every member of `room`, on every server; resolves to the stored message. */
  broadcast (room: string, text: string, opts?: BroadcastOptions): Promise<ChatMessage>
  /** Open chat sockets on this server. */
  readonly size: number
  /** Rooms with at least one member on this server. */
  rooms (): string[]
  /**
   * A page of the users in `room` on every server, and how many there are;
   * pass `next` as `after` for the next page. Paging to the end lists each
   * user present throughout exactly once.
   */
  presence (room: string, opts?: PresenceOptions): Promise<PresencePage>
  /** How many distinct users are in `room` on every server. */
  occupancy (room: string): Promise<number>
  /**
   * A page of older messages: the latest `limit` kept ones below offset
   * `before`, oldest first, with the room's epoch and latest offset, and
   * whether older ones are kept (`more`); pass the first one's offset as
   * `before` for the next page.
   */
  history (room: string, opts: HistoryBeforeOptions): Promise<OlderPage>
  /** Stored messages of `room`, oldest first. */
  history (room: string, opts?: HistoryOptions): Promise<ChatMessage[]>
  /**
   * User `userId`'s unread counts, `{ [room]: count }`, in every room they
   * have a read position in: messages after it that are plain (not edits or
   * deletes) and not their own, each counted among the latest `historySize`
   * at most.
   */
  unread (userId: string): Promise<Record<string, number>>
  /** Counters since the plugin registered. */
  stats (): ChatStats
  /**
   * Closes the matching sockets on every server with 4000 and `reason`.
   * Resolves once the command has reached every server, with the number of
   * sockets this server closed; rejects with `FST_CHAT_ADAPTER_UNAVAILABLE`
   * when it cannot reach them.
   */
  disconnect (target: DisconnectTarget, opts?: ModerationOptions): Promise<number>
  /**
   * Takes the user's sockets out of `room` on every server: each gets `left`
   * with reason `removed`, and the others see the user leave. Resolves like
   * {@link disconnect}, with the number of sockets removed here.
   */
  removeFromRoom (room: string, userId: string, opts?: ModerationOptions): Promise<number>
  /**
   * Joins the user's open sockets to `room` on every server, as if they had
   * asked (without `authorize`): each gets `joined`, the others see the
   * user join. Resolves like {@link disconnect}, with the number of sockets added here.
   */
  addToRoom (room: string, userId: string): Promise<number>
}

/** What the facade reads from. */
export interface ChatParts {
  hub: Hub
  moderation: Moderation
  broker: Broker
  presence: PresenceTracker
  connections: Connections
  stats: Stats
  historySize: number
  maxMessageLength: number
  maxMetaBytes: number
  metaSchema: MetaSchema | null
  /** The default page size of `presence`. */
  presenceListMax: number
  /** The largest (and default) page of `history` with `before`. @default defaults.maxHistoryPage */
  maxHistoryPage?: number
}

function checkRoom (room: unknown): string {
  if (!isRoomName(room)) throw new FST_CHAT_INVALID_ROOM(JSON.stringify(room))
  return room
}

function checkCount (name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new FST_CHAT_INVALID_ARGUMENT(name, `must be an integer >= 0, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

function checkId (name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_USER_ID_LENGTH || !isWellFormed(value)) {
    throw new FST_CHAT_INVALID_ARGUMENT(name, `must be a string of 1 to ${MAX_USER_ID_LENGTH} characters, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

// A close frame's reason fits in 123 bytes (RFC 6455 §5.5).
const MAX_REASON_BYTES = 123

function checkReason (opts: unknown): string | undefined {
  if (opts === undefined) return undefined
  if (typeof opts !== 'object' || opts === null) throw new FST_CHAT_INVALID_ARGUMENT('opts', 'must be an object')
  const { reason } = opts as { reason?: unknown }
  if (reason === undefined) return undefined
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_REASON_BYTES || !isWellFormed(reason)) {
    throw new FST_CHAT_INVALID_ARGUMENT('reason', `must be a string of at most ${MAX_REASON_BYTES} bytes`)
  }
  return reason
}

function checkTarget (target: unknown): { userId: string } | { clientId: string } {
  if (typeof target !== 'object' || target === null) throw new FST_CHAT_INVALID_ARGUMENT('target', 'must be { userId } or { clientId }')
  const { userId, clientId } = target as { userId?: unknown, clientId?: unknown }
  if ((userId === undefined) === (clientId === undefined)) throw new FST_CHAT_INVALID_ARGUMENT('target', 'must have exactly one of userId and clientId')
  return userId !== undefined ? { userId: checkId('userId', userId) } : { clientId: checkId('clientId', clientId) }
}

function checkPage (opts: unknown, defaultLimit: number): PageRequest {
  if (typeof opts !== 'object' || opts === null) throw new FST_CHAT_INVALID_ARGUMENT('opts', 'must be an object')
  const { limit = defaultLimit, after } = opts as { limit?: unknown, after?: unknown }
  if (!isPageLimit(limit)) {
    throw new FST_CHAT_INVALID_ARGUMENT('limit', `must be an integer from 1 to ${MAX_MEMBERS_PAGE}, got ${JSON.stringify(limit) ?? String(limit)}`)
  }
  if (after === undefined) return { limit }
  if (!isCursor(after)) throw new FST_CHAT_INVALID_ARGUMENT('after', `must be the next of an earlier page, a string of 1 to ${MAX_CURSOR_LENGTH} characters`)
  return { limit, after }
}

function checkOlder (opts: Record<string, unknown>, maxPage: number): { before: number, limit: number } {
  if (opts.since !== undefined) throw new FST_CHAT_INVALID_ARGUMENT('since', 'cannot be given with before')
  const before = checkCount('before', opts.before)
  const { limit = maxPage } = opts
  if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > maxPage) {
    throw new FST_CHAT_INVALID_ARGUMENT('limit', `must be an integer from 1 to ${maxPage}, got ${JSON.stringify(limit) ?? String(limit)}`)
  }
  return { before, limit: limit as number }
}

/** A copy the caller may change: a store may hand out the objects it keeps. */
function copyMessage (message: ChatMessage): ChatMessage {
  const copy = { ...message, from: { id: message.from.id, name: message.from.name } }
  if (message.meta !== undefined) copy.meta = structuredClone(message.meta)
  return copy
}

/** Builds `app.chat`: the documented members and nothing else, frozen. */
export function createChat (parts: ChatParts): Chat {
  const { hub, moderation, broker, presence, connections, stats, historySize, maxMessageLength } = parts
  const pageSize = Math.max(1, parts.presenceListMax)
  const maxHistoryPage = parts.maxHistoryPage ?? defaults.maxHistoryPage
  async function history (room: string, opts: HistoryOptions | HistoryBeforeOptions = {}): Promise<ChatMessage[] | OlderPage> {
    checkRoom(room)
    if (typeof opts !== 'object' || opts === null) throw new FST_CHAT_INVALID_ARGUMENT('opts', 'must be an object')
    if (opts.before !== undefined) {
      const { before, limit } = checkOlder(opts as unknown as Record<string, unknown>, maxHistoryPage)
      if (broker.before === undefined) throw new FST_CHAT_UNSUPPORTED('history with "before" needs a store (or adapter) with before()')
      const page = await broker.before(room, before, limit)
      return { epoch: page.epoch, offset: page.offset, messages: page.messages.map(copyMessage), more: page.more }
    }
    const limit = checkCount('limit', opts.limit ?? historySize)
    if (opts.since === undefined) return (await broker.recent(room, limit)).messages.map(copyMessage)
    const after = checkCount('since', opts.since)
    const page = await broker.since(room, after) ?? await broker.recent(room, historySize)
    return page.messages.filter((m) => m.offset > after).slice(0, limit).map(copyMessage)
  }
  const open = (): void => {
    if (hub.closed) throw new FST_CHAT_CLOSED()
  }
  return Object.freeze({
    async broadcast (room: string, text: string, opts: BroadcastOptions = {}): Promise<ChatMessage> {
      checkRoom(room)
      const problem = textProblem(text, maxMessageLength)
      if (problem !== null) throw new FST_CHAT_INVALID_MESSAGE(problem.message)
      const from = opts.from ?? SYSTEM_USER
      const message: NewMessage = { room, ts: Date.now(), from: { id: from.id, name: from.name }, text }
      if (opts.meta !== undefined) {
        const checked = checkAppMeta(opts.meta, parts.maxMetaBytes, parts.metaSchema)
        if (!checked.ok) throw new FST_CHAT_INVALID_MESSAGE(checked.message)
        message.meta = checked.meta
      }
      const result = await hub.publish(message, null)
      return copyMessage(result.message)
    },

    get size (): number {
      return connections.size
    },

    rooms (): string[] {
      return hub.rooms.names()
    },

    async presence (room: string, opts: PresenceOptions = {}): Promise<PresencePage> {
      checkRoom(room)
      const page = await presence.peekPage(room, checkPage(opts, pageSize))
      // Copies: the caller may change them, and presence may hand out its own.
      const users = page.users.map((user) => ({ id: user.id, name: user.name }))
      return page.next === undefined ? { users, count: page.count } : { users, count: page.count, next: page.next }
    },

    async occupancy (room: string): Promise<number> {
      return await presence.count(checkRoom(room))
    },

    history: history as Chat['history'],

    async unread (userId: string): Promise<Record<string, number>> {
      checkId('userId', userId)
      return await hub.reads.unreadOf(userId)
    },

    stats (): ChatStats {
      return stats.snapshot(connections.size)
    },

    async disconnect (target: DisconnectTarget, opts?: ModerationOptions): Promise<number> {
      const whom = checkTarget(target)
      const reason = checkReason(opts) ?? 'disconnected'
      open()
      return await moderation.run({ type: 'disconnect', ...whom, reason })
    },

    async removeFromRoom (room: string, userId: string, opts?: ModerationOptions): Promise<number> {
      checkRoom(room)
      checkId('userId', userId)
      const reason = checkReason(opts)
      open()
      return await moderation.run(reason === undefined ? { type: 'remove', room, userId } : { type: 'remove', room, userId, reason })
    },

    async addToRoom (room: string, userId: string): Promise<number> {
      checkRoom(room)
      checkId('userId', userId)
      open()
      return await moderation.add(room, userId)
    }
  })
}
