import type { ChatMessage } from '../wire.js'
import type { Adapter, Deliver } from './adapter.js'

/** The single-node adapter: a published message goes straight back to the local hub. */
export class MemoryAdapter implements Adapter {
  #deliver: Deliver | null = null

  start (deliver: Deliver): void {
    this.#deliver = deliver
  }

  publish (message: ChatMessage, exclude: string | null): void {
    this.#deliver?.(message, exclude)
  }

  close (): void {
    this.#deliver = null
  }
}
