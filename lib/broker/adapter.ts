import type { FastifyBaseLogger } from 'fastify'
import type { HistoryStore, NewMessage } from '../stores/history-store.js'
import type { ChatMessage, User } from '../protocol/wire.js'

/** A presence change, as every node hands it to its members of the room. */
export interface PresenceEvent {
  room: string
  event: 'join' | 'leave' | 'rename'
  user: User
  /** The old name, for `rename`. */
  previous?: string
}

/** What an adapter calls back into: this node's delivery to its own sockets. */
export interface AdapterNode {
  /** Sends a stored message to this node's members of its room; `exclude` is a connection key to skip. */
  deliver (message: ChatMessage, exclude: string | null): void
  /** Sends a presence event to this node's members of its room, except the user's own sockets. */
  presence (event: PresenceEvent): void
}

/** What the plugin hands an adapter when it starts. */
export interface AdapterContext {
  /** Messages kept per room. */
  historySize: number
  /** The history store, for adapters that do not keep history themselves. */
  store: HistoryStore
  log: FastifyBaseLogger
}

/** What a publish did: the stored message, and whether its `cid` had been stored before (nothing was sent). */
export interface PublishResult {
  message: ChatMessage
  duplicate: boolean
}

/**
 * Carries messages and presence between the nodes that serve one chat. Every
 * broadcast goes through it, on one node too ({@link MemoryAdapter}), so there
 * is one delivery path. Bring your own by implementing this interface.
 */
export interface Adapter {
  /** History kept by the adapter itself (the Redis adapter); the plugin then reads history from it. */
  readonly store?: HistoryStore
  /** A secret shared by every node, for resume tokens; without it each node makes its own. */
  secret? (): Promise<string>
  /** Called once when the plugin registers. */
  start (node: AdapterNode, context: AdapterContext): Promise<void> | void
  /** Stores a message and has every node (this one included) deliver it, in the same order everywhere. */
  publish (message: NewMessage, exclude: string | null): Promise<PublishResult>
  /** This node has its first local member in `room`: start receiving its messages. */
  subscribe (room: string): Promise<void>
  /** This node has no local member in `room` any more. */
  unsubscribe (room: string): Promise<void>
  /** A user's first socket on this node joined `room`; announces the join unless the user is already there. */
  join (room: string, user: User): Promise<void>
  /** A user's last socket on this node left `room`; announces the leave unless the user is still there elsewhere. */
  leave (room: string, user: User): Promise<void>
  /** A user present on this node renamed; announces it. */
  rename (room: string, user: User, previous: string): Promise<void>
  /** Users in `room` on every node, each once. */
  presence (room: string): Promise<User[]>
  /** Stops; called once on `app.close()`. */
  close (): Promise<void> | void
}
