import type { ChatMessage, SignalFrame } from '../protocol/wire.js'
import type { HistoryPage, NewMessage, OlderPage } from '../stores/history-store.js'

/** What a publish did: the stored message, and whether its `cid` had been stored before (then nothing was sent). */
export interface PublishResult {
  message: ChatMessage
  duplicate: boolean
}

/** Where a broker hands the messages of the rooms this server subscribed to. */
export interface BrokerNode {
  /** Sends a stored message to this server's members of its room; `exclude` is a connection key to skip. */
  deliver (message: ChatMessage, exclude: string | null): void
  /**
   * The room's history changed under this server in a way delivery cannot
   * bridge: its epoch changed (the back end lost it), or messages after the
   * last one delivered here are no longer kept. Each local member is sent a
   * fresh `joined` (`recovered: false`) before live delivery goes on.
   */
  reset (room: string): void
  /** Writes a signal to this server's members of its room, except the connection `exclude`; nothing is stored. */
  signal? (frame: SignalFrame, exclude: string | null): void
  /**
   * User `userId`'s read position in `room` moved to `offset`: this
   * server's sockets of that user in the room are told, but `exclude` (a
   * connection key, the socket that moved it).
   */
  read? (room: string, userId: string, offset: number, exclude: string | null): void
}

/**
 * Numbers, keeps and carries the messages of every room between the servers
 * of one chat. Every broadcast goes through it, on one server too, so there
 * is one delivery path. The history it reads is the one it writes: a local
 * broker's {@link HistoryStore}, or Redis's own streams.
 */
export interface Broker {
  /** Stores a message and has every server (this one included) deliver it, in the same order everywhere. */
  publish (message: NewMessage, exclude: string | null): Promise<PublishResult>
  /** This server has its first local member in `room`: deliver its messages from now on. */
  subscribe (room: string): Promise<void>
  /** This server has no local member in `room` any more. */
  unsubscribe (room: string): Promise<void>
  /**
   * Has every server (this one included) hand `frame` to its node's
   * `signal`, best effort: not stored, not numbered, not retried. A broker
   * without it carries no signals between servers: the plugin then
   * delivers them on the sender's server only.
   */
  signal? (frame: SignalFrame, exclude: string | null): Promise<void>
  /** The latest `limit` messages of `room`, with its epoch and latest offset. */
  recent (room: string, limit: number): Promise<HistoryPage>
  /** Every message after `offset`, or `null` when some are no longer kept (the caller cannot recover without a gap). */
  since (room: string, offset: number): Promise<HistoryPage | null>
  /**
   * The latest `limit` kept messages of `room` below `offset`, oldest first,
   * and whether older ones are kept (see `HistoryStore.before`). Optional:
   * a broker without it cannot page back, and clients' `history` requests get
   * `unknown_type`.
   */
  before? (room: string, offset: number, limit: number): Promise<OlderPage>
  /** The entry at `offset` in `room`, or `null` when there is none or it is no longer kept. */
  entry (room: string, offset: number): Promise<ChatMessage | null>
  /**
   * Moves user `userId`'s read position in `room` forward to `offset`
   * (clamped to the room's latest; see `HistoryStore.markRead`), and when
   * it moved, has every server's node (this one's too) hear of it through
   * `read`. Resolves to the new position, or `null` when it did not move.
   * Without the three read methods, the chat keeps positions per socket only.
   */
  markRead? (room: string, userId: string, offset: number, exclude: string | null): Promise<number | null>
  /** User `userId`'s read position in `room`; 0 when none is kept. */
  readPosition? (room: string, userId: string): Promise<number>
  /** User `userId`'s read positions, by room. */
  readPositions? (userId: string): Promise<Record<string, number>>
}
