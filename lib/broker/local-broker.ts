import type { HistoryPage, HistoryStore, NewMessage } from '../stores/history-store.js'
import type { Broker, BrokerNode, PublishResult } from './broker.js'

/** The single-server broker: numbers and keeps messages in a {@link HistoryStore} and hands each straight back to this server. */
export class LocalBroker implements Broker {
  readonly #store: HistoryStore
  #node: BrokerNode | null = null

  constructor (store: HistoryStore) {
    this.#store = store
  }

  start (node: BrokerNode): void {
    this.#node = node
  }

  async publish (message: NewMessage, exclude: string | null): Promise<PublishResult> {
    const result = await this.#store.append(message)
    if (!result.duplicate) this.#node?.deliver(result.message, exclude)
    return result
  }

  async subscribe (): Promise<void> {}

  async unsubscribe (): Promise<void> {}

  async recent (room: string, limit: number): Promise<HistoryPage> {
    return await this.#store.recent(room, limit)
  }

  async since (room: string, offset: number): Promise<HistoryPage | null> {
    return await this.#store.since(room, offset)
  }

  close (): void {
    this.#node = null
  }
}
