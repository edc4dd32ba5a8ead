import type { User } from '../protocol/wire.js'

/**
 * Direct rooms, with the other user, and the openDirect() calls not answered
 * yet. A direct room is rejoined with `with`, not by name, since a server
 * that forgot the pair refuses a direct room's name; an unanswered ask is
 * asked again after a reconnect, and dropped when the server refuses it.
 */
export class Directs {
  #rooms = new Map<string, User>()
  // User id -> the cid of the join that asked for it.
  #asks = new Map<string, string>()

  /** A copy: room -> the other user. */
  get rooms (): Map<string, User> { return new Map(this.#rooms) }

  has (room: string): boolean { return this.#rooms.has(room) }
  get (room: string): User | undefined { return this.#rooms.get(room) }

  /** Says whether `room` was a direct room. */
  delete (room: string): boolean { return this.#rooms.delete(room) }

  /** A `joined` with `with`: asked for with openDirect, or added by the server when the other user wrote. */
  joined (room: string, other: User): void {
    this.#rooms.set(room, other)
    this.#asks.delete(other.id)
  }

  ask (userId: string, cid: string): void { this.#asks.set(userId, cid) }

  /** The cid of the unanswered ask for `userId`. */
  askOf (userId: string): string | undefined { return this.#asks.get(userId) }

  /** The user an unanswered ask with `cid` was for. */
  askedBy (cid: string | undefined): string | undefined {
    if (cid === undefined) return undefined
    for (const [userId, asked] of this.#asks) if (asked === cid) return userId
    return undefined
  }

  /** Asking again would get the same answer. */
  dropAsk (userId: string): void { this.#asks.delete(userId) }

  roomOf (userId: string): string | undefined {
    for (const [room, user] of this.#rooms) if (user.id === userId) return room
    return undefined
  }

  /** What a fresh socket asks for: every direct room, then the asks with no room yet, each with its cid. */
  rejoins (): { rooms: Array<[string, User]>, asks: Array<[string, string]> } {
    return {
      rooms: [...this.#rooms],
      asks: [...this.#asks].filter(([userId]) => this.roomOf(userId) === undefined)
    }
  }
}
