import type { HistoryPage } from '../stores/history-store.js'

/** One room's reads since its latest append. */
interface RoomReads {
  /** Bumped by every append: a read begun under an older one may lack the message. */
  generation: number
  pages: Map<string, Promise<HistoryPage | null>>
}

// A room's reads are few shapes (the latest history, everything after the
// offset the clients had when the server went away), so a handful is enough.
const MAX_PAGES_PER_ROOM = 8

/**
 * The history reads of the rooms that have members here, shared until the
 * room's next append. When a server comes back under a full room, thousands
 * of clients rejoin asking for the same pages; each was read (and encoded)
 * once per client. A read begun before an append is never kept after it,
 * so a join that holds live messages from before its read still sees every
 * message once (the read has it, or the hold does).
 */
export class ReadCache {
  readonly #rooms = new Map<string, RoomReads>()

  /** Caches reads of `room` from now on (it has members here). */
  watch (room: string): void {
    if (!this.#rooms.has(room)) this.#rooms.set(room, { generation: 0, pages: new Map() })
  }

  /** Forgets `room` (no member left here). */
  unwatch (room: string): void {
    this.#rooms.delete(room)
  }

  /** A message was appended to `room`: nothing read before it is handed out again. */
  appended (room: string): void {
    const reads = this.#rooms.get(room)
    if (reads === undefined) return
    reads.generation++
    reads.pages.clear()
  }

  /** `read()`'s page, or the same page read since the room's latest append. */
  async get<P extends HistoryPage | null> (room: string, key: string, read: () => Promise<P>): Promise<P> {
    const reads = this.#rooms.get(room)
    if (reads === undefined) return await read()
    const cached = reads.pages.get(key)
    if (cached !== undefined) return await (cached as Promise<P>)
    const { generation } = reads
    const page = read()
    if (reads.pages.size < MAX_PAGES_PER_ROOM) reads.pages.set(key, page)
    try {
      return await page
    } catch (err) {
      if (reads.pages.get(key) === page) reads.pages.delete(key)
      throw err
    } finally {
      // Appended meanwhile: appended() cleared it already; this only guards a read that outlived a new watch.
      if (reads.generation !== generation && reads.pages.get(key) === page) reads.pages.delete(key)
    }
  }
}
