import type { AppendResult, HistoryPage, HistoryStore, NewMessage, OlderPage } from '../stores/history-store.js'
import type { ChatMessage, SignalFrame } from '../protocol/wire.js'
import type { Broker, BrokerNode, PublishResult } from './broker.js'
import { ReadCache } from './read-cache.js'
import { MemoryReads } from '../stores/memory-reads.js'

/** The single-server broker: numbers and keeps messages in a {@link HistoryStore} and hands each straight back to this server. */
export class LocalBroker implements Broker {
  readonly #store: HistoryStore
  #node: BrokerNode | null = null
  // Each room's latest append still running. A sender's publishes overlap
  // (they are not awaited one by one), and a store may take each append at
  // its own pace, so a room's appends are chained to number them in call order.
  readonly #appending = new Map<string, Promise<AppendResult>>()
  readonly #reads = new ReadCache()
  /**
   * The store's `before`, when it has one. Not through the read cache: each
   * scroll back asks for its own page, and sharing is for the few pages
   * many joins ask for at once.
   */
  readonly before?: (room: string, offset: number, limit: number) => Promise<OlderPage>
  // Read positions, for a store that keeps none itself.
  readonly #positions: MemoryReads | null

  constructor (store: HistoryStore) {
    this.#store = store
    if (typeof store.before === 'function') {
      const before = store.before
      this.before = async (room, offset, limit) => await before.call(store, room, offset, limit)
    }
    const keeps = typeof store.markRead === 'function' && typeof store.readPosition === 'function' && typeof store.readPositions === 'function'
    this.#positions = keeps ? null : new MemoryReads()
  }

  start (node: BrokerNode): void {
    this.#node = node
  }

  async publish (message: NewMessage, exclude: string | null): Promise<PublishResult> {
    const { room } = message
    const before = this.#appending.get(room)
    const append = async (): Promise<AppendResult> => await this.#store.append(message)
    // Without an append before it, this one starts at once: a synchronous store numbers it right away.
    const appended = before === undefined ? append() : before.then(append, append)
    this.#appending.set(room, appended)
    let result: AppendResult
    try {
      result = await appended
    } finally {
      if (this.#appending.get(room) === appended) this.#appending.delete(room)
    }
    if (!result.duplicate) {
      // Before the delivery: a join that starts holding after it must read anew.
      this.#reads.appended(room)
      this.#node?.deliver(result.message, exclude)
    }
    return result
  }

  async signal (frame: SignalFrame, exclude: string | null): Promise<void> {
    this.#node?.signal?.(frame, exclude)
  }

  async subscribe (room: string): Promise<void> {
    this.#reads.watch(room)
  }

  async unsubscribe (room: string): Promise<void> {
    this.#reads.unwatch(room)
  }

  async recent (room: string, limit: number): Promise<HistoryPage> {
    return await this.#reads.get(room, `recent:${limit}`, async () => await this.#store.recent(room, limit))
  }

  async since (room: string, offset: number): Promise<HistoryPage | null> {
    return await this.#reads.get(room, `since:${offset}`, async () => await this.#store.since(room, offset))
  }

  async entry (room: string, offset: number): Promise<ChatMessage | null> {
    return await this.#store.entry(room, offset)
  }

  async markRead (room: string, userId: string, offset: number, exclude: string | null): Promise<number | null> {
    let moved: number | null
    if (this.#positions === null) {
      moved = await (this.#store.markRead as NonNullable<HistoryStore['markRead']>).call(this.#store, room, userId, offset)
    } else {
      const { offset: latest } = await this.recent(room, 0)
      moved = this.#positions.mark(room, userId, Math.min(offset, latest), latest)
    }
    if (moved !== null) this.#node?.read?.(room, userId, moved, exclude)
    return moved
  }

  async readPosition (room: string, userId: string): Promise<number> {
    if (this.#positions !== null) return this.#positions.position(room, userId)
    return await (this.#store.readPosition as NonNullable<HistoryStore['readPosition']>).call(this.#store, room, userId)
  }

  async readPositions (userId: string): Promise<Record<string, number>> {
    if (this.#positions !== null) return this.#positions.positions(userId)
    return await (this.#store.readPositions as NonNullable<HistoryStore['readPositions']>).call(this.#store, userId)
  }

  close (): void {
    this.#node = null
    this.#positions?.clear()
  }
}
