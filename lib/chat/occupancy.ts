/** What occupancy needs to know and do. */
export interface OccupancyOptions {
  /** Above this many users in a room, its members get counts instead of per-user events. */
  eventsMax: number
  /** Least time between two counts sent to one room. */
  intervalMs: number
  /** Sends `count` to the members of `room` on this server. */
  send: (room: string, count: number) => void
}

/** A room that went above the limit at some point since it got members here. */
interface Counted {
  /** Whether it is above the limit now: its members get counts, not events. */
  above: boolean
  /** The count of the latest event. */
  latest: number
  /** The count last sent, or null before the first. */
  sent: number | null
  sentAt: number
  timer: NodeJS.Timeout | null
}

/**
 * Decides, per presence event, whether a room's members get it user by user
 * or only as an `occupancy` count. In a big room a per-user event costs a
 * frame per member per join, so filling it (or a reconnect storm into it)
 * would be quadratic; counts are coalesced to at most one per interval
 * instead, the latest winning, and none while the count stays the same.
 */
export class Occupancy {
  readonly #eventsMax: number
  readonly #intervalMs: number
  readonly #send: (room: string, count: number) => void
  // Only rooms that went above the limit: kept until the room empties here,
  // so a room swinging around the limit is still held to the interval.
  readonly #rooms = new Map<string, Counted>()

  constructor (opts: OccupancyOptions) {
    this.#eventsMax = opts.eventsMax
    this.#intervalMs = opts.intervalMs
    this.#send = opts.send
  }

  /**
   * A presence event left `room` with `count` users: whether its members get
   * the event itself. When they do not, a count is sent now or when the
   * interval since the last one is over.
   */
  event (room: string, count: number): boolean {
    let counted = this.#rooms.get(room)
    if (count <= this.#eventsMax) {
      if (counted === undefined || !counted.above) return true
      counted.above = false
      clearTimeout(counted.timer ?? undefined)
      counted.timer = null
      counted.latest = count
      // Clients that had only counts get the current one before the events resume.
      if (counted.sent !== count) this.#sendNow(room, counted, false)
      return true
    }
    if (counted === undefined) this.#rooms.set(room, counted = { above: true, latest: count, sent: null, sentAt: -Infinity, timer: null })
    counted.above = true
    counted.latest = count
    if (counted.timer === null) {
      const wait = counted.sentAt + this.#intervalMs - performance.now()
      if (wait <= 0) this.#sendNow(room, counted, true)
      else counted.timer = setTimeout(() => this.#due(room, counted), wait)
    }
    return false
  }

  /** The room has no member here any more. */
  forget (room: string): void {
    const counted = this.#rooms.get(room)
    if (counted === undefined) return
    clearTimeout(counted.timer ?? undefined)
    this.#rooms.delete(room)
  }

  close (): void {
    for (const room of [...this.#rooms.keys()]) this.forget(room)
  }

  #due (room: string, counted: Counted): void {
    counted.timer = null
    if (counted.latest !== counted.sent) this.#sendNow(room, counted, true)
  }

  /** `coalesce`: later changes within the interval wait for its end. */
  #sendNow (room: string, counted: Counted, coalesce: boolean): void {
    counted.sent = counted.latest
    counted.sentAt = performance.now()
    if (coalesce) counted.timer = setTimeout(() => this.#due(room, counted), this.#intervalMs)
    this.#send(room, counted.latest)
  }
}
