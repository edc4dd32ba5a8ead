import type { Broker } from './broker/broker.js'
import type { Hub } from './chat/hub.js'
import type { PresenceTracker } from './chat/presence-tracker.js'
import { FST_CHAT_INVALID_ARGUMENT, FST_CHAT_INVALID_MESSAGE, FST_CHAT_INVALID_ROOM } from './errors.js'
import { SYSTEM_USER } from './options.js'
import { isRoomName, textProblem } from './protocol/text.js'
import type { ChatMessage, User } from './protocol/wire.js'
import type { ChatStats, Stats } from './stats.js'
import type { Connections } from './transport/connections.js'

/** Options of `app.chat.broadcast`. */
export interface BroadcastOptions {
  /** Sender shown to clients. @default { id: 'system', name: 'system' } */
  from?: User
}

/** Options of `app.chat.history`. */
export interface HistoryOptions {
  /** Only messages after this offset. */
  since?: number
  /** At most this many messages. @default historySize */
  limit?: number
}

/** The `app.chat` decorator. */
export interface Chat {
  /** Stores a message and sends it to every member of `room`, on every server; resolves to the stored message. */
  broadcast (room: string, text: string, opts?: BroadcastOptions): Promise<ChatMessage>
  /** Open chat sockets on this server. */
  readonly size: number
  /** Rooms with at least one member on this server. */
  rooms (): string[]
  /** Users in `room` on every server, each once. */
  presence (room: string): Promise<User[]>
  /** Stored messages of `room`, oldest first. */
  history (room: string, opts?: HistoryOptions): Promise<ChatMessage[]>
  /** Counters since the plugin registered. */
  stats (): ChatStats
}

/** What the facade reads from. */
export interface ChatParts {
  hub: Hub
  broker: Broker
  presence: PresenceTracker
  connections: Connections
  stats: Stats
  historySize: number
  maxMessageLength: number
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

/** A copy the caller may change: a store may hand out the objects it keeps. */
function copyMessage (message: ChatMessage): ChatMessage {
  return { ...message, from: { id: message.from.id, name: message.from.name } }
}

/** Builds `app.chat`: the documented members and nothing else, frozen. */
export function createChat (parts: ChatParts): Chat {
  const { hub, broker, presence, connections, stats, historySize, maxMessageLength } = parts
  return Object.freeze({
    async broadcast (room: string, text: string, opts: BroadcastOptions = {}): Promise<ChatMessage> {
      checkRoom(room)
      const problem = textProblem(text, maxMessageLength)
      if (problem !== null) throw new FST_CHAT_INVALID_MESSAGE(problem.message)
      const from = opts.from ?? SYSTEM_USER
      const result = await hub.publish({ room, ts: Date.now(), from: { id: from.id, name: from.name }, text }, null)
      return copyMessage(result.message)
    },

    get size (): number {
      return connections.size
    },

    rooms (): string[] {
      return hub.rooms.names()
    },

    async presence (room: string): Promise<User[]> {
      // Copies: the caller may change them, and presence may hand out its own.
      return (await presence.peek(checkRoom(room))).map((user) => ({ id: user.id, name: user.name }))
    },

    async history (room: string, opts: HistoryOptions = {}): Promise<ChatMessage[]> {
      checkRoom(room)
      const limit = checkCount('limit', opts.limit ?? historySize)
      if (opts.since === undefined) return (await broker.recent(room, limit)).messages.map(copyMessage)
      const after = checkCount('since', opts.since)
      const page = await broker.since(room, after) ?? await broker.recent(room, historySize)
      return page.messages.filter((m) => m.offset > after).slice(0, limit).map(copyMessage)
    },

    stats (): ChatStats {
      return stats.snapshot(connections.size)
    }
  })
}
