import type { FastifyBaseLogger } from 'fastify'
import type { PageRequest, Presence, PresencePage } from '../broker/presence.js'
import type { User } from '../protocol/wire.js'

/** A user in a room whose join is on its way or failed, or whose leave waits out the grace period. */
interface Unsettled {
  user: User
  announced: Promise<void>
  state: 'pending' | 'done' | 'failed'
  leaving: NodeJS.Timeout | null
}

/**
 * This server's side of presence: announces a user's arrival in a room and,
 * after a grace period, their departure, so a reconnect within it (to any
 * server) shows no leave/join flash. Presence failures are logged, never thrown
 * at the socket that caused them.
 *
 * A join that failed announced nothing as far as anyone here knows, so a
 * return within the grace period after it is a fresh join, not a called-off
 * leave: otherwise a join refused once and retried would never be announced
 * or listed.
 */
export class PresenceTracker {
  readonly #presence: Presence
  readonly #graceMs: number
  readonly #log: FastifyBaseLogger
  // By room, then user id. A user whose join went through and who has not
  // left has no entry: only the unsettled ones cost memory.
  readonly #unsettled = new Map<string, Map<string, Unsettled>>()
  #closed = false

  constructor (presence: Presence, graceMs: number, log: FastifyBaseLogger) {
    this.#presence = presence
    this.#graceMs = graceMs
    this.#log = log
  }

  /**
   * The user's first socket here joined `room`: the announcement to wait for,
   * or `null` when the user is back within the grace period after an
   * announced join (nothing to announce). A return while the earlier join is
   * still on its way waits for that one.
   */
  arrived (room: string, user: User): Promise<void> | null {
    const entry = this.#unsettled.get(room)?.get(user.id)
    if (entry !== undefined) {
      clearTimeout(entry.leaving ?? undefined)
      entry.leaving = null
      if (entry.state === 'pending') return entry.announced
      this.#forget(room, entry)
      if (entry.state === 'done') return null
    }
    return this.#announce(room, user)
  }

  #announce (room: string, user: User): Promise<void> {
    const announced = this.#presence.join(room, { id: user.id, name: user.name })
    const entry = this.#remember(room, { user, announced, state: 'pending', leaving: null })
    announced.then(() => {
      entry.state = 'done'
      if (entry.leaving === null) this.#forget(room, entry)
    }, () => { entry.state = 'failed' })
    return announced
  }

  /**
   * The user's last socket here left `room`: announced after the grace
   * period, or now when there is none, the server is closing, or the join
   * failed. After a failed join the leave cleans up one that took effect
   * though its answer was lost, and announces nothing otherwise.
   */
  departed (room: string, user: User): void {
    const entry = this.#unsettled.get(room)?.get(user.id)
    if (this.#graceMs === 0 || this.#closed || entry?.state === 'failed') {
      this.#leave(room, user)
      return
    }
    const leaving = entry ?? this.#remember(room, { user, announced: Promise.resolve(), state: 'done', leaving: null })
    clearTimeout(leaving.leaving ?? undefined)
    leaving.user = user
    leaving.leaving = setTimeout(() => this.#leave(room, user), this.#graceMs)
  }

  /** The user renamed while in `rooms`. */
  renamed (rooms: Iterable<string>, user: User, previous: string): void {
    for (const room of rooms) this.#background(this.#presence.rename(room, user, previous), 'rename')
  }

  /** A page of the room's users, for a member of the room here (its `joined`, or a `members` it asked for). */
  async page (room: string, request: PageRequest): Promise<PresencePage> {
    return await this.#presence.page(room, request, true)
  }

  /** A page of the room's users, for a caller who only looks (`app.chat.presence`). */
  async peekPage (room: string, request: PageRequest): Promise<PresencePage> {
    return await this.#presence.page(room, request, false)
  }

  /** How many distinct users the room has on every server. */
  async count (room: string): Promise<number> {
    return await this.#presence.count(room)
  }

  /** Announces every pending leave now; later departures are announced at once. */
  close (): void {
    this.#closed = true
    for (const [room, users] of [...this.#unsettled]) {
      for (const { leaving, user } of [...users.values()]) {
        if (leaving !== null) this.#leave(room, user)
      }
    }
  }

  #remember (room: string, entry: Unsettled): Unsettled {
    let users = this.#unsettled.get(room)
    if (users === undefined) this.#unsettled.set(room, users = new Map())
    users.set(entry.user.id, entry)
    return entry
  }

  // Only if it is still the user's entry: a later join may have replaced it.
  #forget (room: string, entry: Unsettled): void {
    const users = this.#unsettled.get(room)
    if (users?.get(entry.user.id) !== entry) return
    users.delete(entry.user.id)
    if (users.size === 0) this.#unsettled.delete(room)
  }

  #leave (room: string, user: User): void {
    const entry = this.#unsettled.get(room)?.get(user.id)
    if (entry !== undefined) {
      clearTimeout(entry.leaving ?? undefined)
      this.#forget(room, entry)
    }
    this.#background(this.#presence.leave(room, user), 'leave')
  }

  #background (work: Promise<void>, what: string): void {
    work.catch((err: unknown) => this.#log.warn({ err }, `fastify-chat: presence ${what} failed`))
  }
}
