import type { ChatMessage } from '../wire.js'

/** Hands a stored message to this node's sockets; `exclude` is the key of a connection to skip. */
export type Deliver = (message: ChatMessage, exclude: string | null) => void

/**
 * Carries every stored message to every node that has members in its room,
 * this one included. One node needs nothing more than {@link MemoryAdapter}.
 */
export interface Adapter {
  /** Called once, before the first publish, with this node's delivery function. */
  start (deliver: Deliver): Promise<void> | void
  /** Sends a stored message to every node. */
  publish (message: ChatMessage, exclude: string | null): Promise<void> | void
  /** Stops delivering; called once on `app.close()`. */
  close (): Promise<void> | void
}
