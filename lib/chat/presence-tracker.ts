import type { FastifyBaseLogger } from 'fastify'
import type { Presence } from '../broker/presence.js'
import type { User } from '../protocol/wire.js'

interface Leaving {
  timer: NodeJS.Timeout
  user: User
}

/**
 * This server's side of presence: announces a user's arrival in a room and,
 * after a grace period, their departure, so a reconnect within it (to any
 * server) shows no leave/join flash. Presence failures are logged, never thrown
 * at the socket that caused them.
 */
export class PresenceTracker {
  readonly #presence: Presence
  readonly #graceMs: number
  readonly #log: FastifyBaseLogger
  // Users whose last local socket left a room, by room then user id,
  // announced only if they do not come back within the grace period.
  readonly #leaving = new Map<string, Map<string, Leaving>>()
  #closed = false

  constructor (presence: Presence, graceMs: number, log: FastifyBaseLogger) {
    this.#presence = presence
    this.#graceMs = graceMs
    this.#log = log
  }

  /**
   * The user's first socket here joined `room`: the announcement on its way,
   * or `null` when the user is back within the grace period (nothing to announce).
   */
  arrived (room: string, user: User): Promise<void> | null {
    const leaving = this.#leaving.get(room)
    const pending = leaving?.get(user.id)
    if (leaving !== undefined && pending !== undefined) {
      clearTimeout(pending.timer)
      leaving.delete(user.id)
      if (leaving.size === 0) this.#leaving.delete(room)
      return null
    }
    const joined = this.#presence.join(room, { id: user.id, name: user.name })
    joined.catch(() => {})
    return joined
  }

  /** The user's last socket here left `room`: announced after the grace period, or now when there is none or the server is closing. */
  departed (room: string, user: User): void {
    if (this.#graceMs === 0 || this.#closed) {
      this.#leave(room, user)
      return
    }
    let leaving = this.#leaving.get(room)
    if (leaving === undefined) this.#leaving.set(room, leaving = new Map())
    const timer = setTimeout(() => {
      const now = this.#leaving.get(room)
      now?.delete(user.id)
      if (now?.size === 0) this.#leaving.delete(room)
      this.#leave(room, user)
    }, this.#graceMs)
    leaving.set(user.id, { timer, user })
  }

  /** The user renamed while in `rooms`. */
  renamed (rooms: Iterable<string>, user: User, previous: string): void {
    for (const room of rooms) this.#background(this.#presence.rename(room, user, previous), 'rename')
  }

  async list (room: string): Promise<User[]> {
    return await this.#presence.list(room)
  }

  /** Announces every pending leave now; later departures are announced at once. */
  close (): void {
    this.#closed = true
    for (const [room, leaving] of this.#leaving) {
      for (const { timer, user } of leaving.values()) {
        clearTimeout(timer)
        this.#leave(room, user)
      }
    }
    this.#leaving.clear()
  }

  #leave (room: string, user: User): void {
    this.#background(this.#presence.leave(room, user), 'leave')
  }

  #background (work: Promise<void>, what: string): void {
    work.catch((err: unknown) => this.#log.warn({ err }, `fastify-chat: presence ${what} failed`))
  }
}
