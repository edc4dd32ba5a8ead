import type { ChatMessage } from '../protocol/wire.js'

/** A message before the store has numbered it. */
export type NewMessage = Omit<ChatMessage, 'offset'>

/**
 * How many of a room's latest `cid`s the package's stores remember, with the
 * message each produced: a resend within that window is recognized, however
 * many messages were pruned since.
 */
export const CID_WINDOW = 256

/** What an append did: the stored message, and whether its `cid` had been stored before (then nothing was stored). */
export interface AppendResult {
  message: ChatMessage
  duplicate: boolean
}

/** A slice of one room's history, read together with the room's epoch and latest offset. */
export interface HistoryPage {
  /** Changes whenever the room's history is lost; offsets from another epoch mean nothing. */
  epoch: string
  /** Offset of the room's latest message, 0 when it has none. */
  offset: number
  /** Oldest first. */
  messages: ChatMessage[]
}

/**
 * A page of a room's older messages, read back from an offset (a scroll
 * back): the latest ones before it, oldest first.
 */
export interface OlderPage extends HistoryPage {
  /** Whether the room keeps messages older than the first one in `messages`: ask again with that one's offset as `before`. */
  more: boolean
}

/**
 * Where messages are numbered and kept. Bring your own by implementing this
 * interface; every method may be called concurrently for different rooms,
 * except that the in-process adapter calls `append` for one room only once
 * the room's previous append has settled, so appends are numbered in the
 * order they were published.
 */
export interface HistoryStore {
  /**
   * Stores a message and gives it the room's next offset. When the room
   * already holds a message with the same `cid` (among its latest
   * {@link CID_WINDOW} cids), nothing is stored and that message comes back
   * with `duplicate: true`.
   */
  append (message: NewMessage): Promise<AppendResult>
  /** The latest `limit` messages of a room. */
  recent (room: string, limit: number): Promise<HistoryPage>
  /**
   * Every kept message after `offset`, or `null` when some of them are no
   * longer kept (or `offset` is beyond the latest), so the caller cannot
   * recover without a gap.
   */
  since (room: string, offset: number): Promise<HistoryPage | null>
  /**
   * The entry at `offset` in a room (a message, an edit or a delete), or
   * `null` when there is none or it is no longer kept. Edits and deletes
   * look their message up here, so it should not scan the room.
   */
  entry (room: string, offset: number): Promise<ChatMessage | null>
  /** The room's current epoch. */
  epoch (room: string): Promise<string>
  /**
   * The latest `limit` (at least 1) kept messages with an offset below
   * `offset`, oldest first, and whether older ones are kept: a scroll back
   * through the room, one page at a time. Empty, with `more: false`, when
   * nothing kept is older than `offset` (an `offset` of 0 or 1, say). Its cost
   * should follow `limit`, not the room's size. Optional: without it, clients'
   * `history` requests get `unknown_type` and `app.chat.history` with
   * `before` throws `FST_CHAT_UNSUPPORTED`.
   */
  before? (room: string, offset: number, limit: number): Promise<OlderPage>
  /**
   * Moves user `userId`'s read position in `room` to `offset`, clamped to
   * the room's latest offset, when that is further than the kept one, or
   * when the kept one is beyond the room's latest (its history was lost
   * since). Resolves to the new position, or `null` when it did not move.
   * Without the three read methods, the in-process adapter keeps positions
   * in memory.
   */
  markRead? (room: string, userId: string, offset: number): Promise<number | null>
  /** User `userId`'s read position in `room`; 0 when none is kept. */
  readPosition? (room: string, userId: string): Promise<number>
  /** User `userId`'s read positions, by room: every room they have one in. */
  readPositions? (userId: string): Promise<Record<string, number>>
  /**
   * Opens what the store needs (a file, a connection); called once when the
   * plugin registers, so a bad environment fails `register` with a clear error.
   */
  init? (): Promise<void>
  /**
   * A random key made once and kept with the history, so that resume tokens
   * signed with it still verify after a restart on the same history. The
   * in-process adapter asks for it when no `secret` option is given; without
   * this method, each process makes its own.
   */
  secret? (): Promise<string>
  /** Releases what the store holds; called once on `app.close()` for a store the plugin created. */
  close? (): Promise<void>
}
