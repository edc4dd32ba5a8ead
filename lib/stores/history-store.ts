import type { ChatMessage } from '../protocol/wire.js'

/** A message before the store has numbered it. */
export type NewMessage = Omit<ChatMessage, 'offset'>

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
 * Where messages are numbered and kept. Bring your own by implementing this
 * interface; every method may be called concurrently for different rooms.
 */
export interface HistoryStore {
  /** Stores a message and gives it the room's next offset. */
  append (message: NewMessage): Promise<ChatMessage>
  /** The latest `limit` messages of a room. */
  recent (room: string, limit: number): Promise<HistoryPage>
  /**
   * Every kept message after `offset`, or `null` when some of them are no
   * longer kept (or `offset` is beyond the latest), so the caller cannot
   * recover without a gap.
   */
  since (room: string, offset: number): Promise<HistoryPage | null>
  /** The room's current epoch. */
  epoch (room: string): Promise<string>
  /**
   * Opens what the store needs (a file, a connection); called once when the
   * plugin registers, so a bad environment fails `register` with a clear error.
   */
  init? (): Promise<void>
  /** Releases what the store holds; called once on `app.close()` for a store the plugin created. */
  close? (): Promise<void>
}
