/** Bounds of {@link MemoryReads}. */
export interface MemoryReadsLimits {
  /** Users kept; the one whose position moved least recently is forgotten past this. */
  maxUsers: number
  /** Rooms kept per user; the room whose position moved least recently is forgotten past this. */
  maxRoomsPerUser: number
}

/**
 * Users' read positions in process memory: the memory store's, and the
 * in-process broker's when its store keeps none. Bounded both ways, so ids
 * and rooms a client makes up cannot grow it without end.
 */
export class MemoryReads {
  // Users least recently moved first; per user, rooms least recently moved first.
  readonly #users = new Map<string, Map<string, number>>()
  readonly #limits: MemoryReadsLimits

  constructor (limits: MemoryReadsLimits = { maxUsers: 100_000, maxRoomsPerUser: 1000 }) {
    this.#limits = limits
  }

  /**
   * Moves the position to `offset` (the caller clamped it to the room's
   * latest, `latest`) when it is further, or when the kept one is beyond
   * `latest` (the room's history was lost since). The new position, or null.
   */
  mark (room: string, userId: string, offset: number, latest: number): number | null {
    let rooms = this.#users.get(userId)
    const current = rooms?.get(room) ?? 0
    if (offset === current || (offset < current && current <= latest)) return null
    if (rooms !== undefined) {
      this.#users.delete(userId)
      rooms.delete(room)
    } else {
      rooms = new Map()
      if (this.#users.size >= this.#limits.maxUsers) this.#users.delete(this.#users.keys().next().value as string)
    }
    this.#users.set(userId, rooms)
    rooms.set(room, offset)
    if (rooms.size > this.#limits.maxRoomsPerUser) rooms.delete(rooms.keys().next().value as string)
    return offset
  }

  position (room: string, userId: string): number {
    return this.#users.get(userId)?.get(room) ?? 0
  }

  positions (userId: string): Record<string, number> {
    return Object.fromEntries(this.#users.get(userId) ?? [])
  }

  clear (): void {
    this.#users.clear()
  }
}
