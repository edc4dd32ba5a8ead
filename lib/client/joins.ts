import type { JoinFrame } from '../protocol/wire.js'
import type { Parts } from './parts.js'

/** Asks the server for rooms: the first time, again on every new socket, and again after an `unavailable`. */
export class Joins {
  readonly #p: Parts

  constructor (parts: Parts) {
    this.#p = parts
  }

  room (room: string): void {
    const since = this.#p.rooms.asking(room)
    this.#p.link.write(since === undefined ? { type: 'join', room } : { type: 'join', room, since })
  }

  /** Joins the direct room with `userId`; `room`, when known, resumes it where it stopped. */
  direct (userId: string, room: string | undefined, cid?: string): void {
    const frame: JoinFrame = { type: 'join', with: userId }
    if (room !== undefined) {
      const since = this.#p.rooms.asking(room)
      if (since !== undefined) frame.since = since
    }
    if (cid !== undefined) frame.cid = cid
    this.#p.link.write(frame)
  }

  /** Every room and direct conversation wanted, on a socket just welcomed. */
  rejoin (): void {
    for (const room of this.#p.rooms.rejoins()) this.room(room)
    const { rooms, asks } = this.#p.directs.rejoins()
    for (const [room, user] of rooms) this.direct(user.id, room)
    for (const [userId, cid] of asks) this.direct(userId, undefined, cid)
  }

  /** Asks again, after a backoff, for a join of `room` (or the direct room with `userId`) that the server could not serve. */
  retry (room: string, userId: string | undefined): void {
    const { rooms, directs, link } = this.#p
    // That join gets no `joined`: an unasked one later would be a reset.
    rooms.answered(room)
    const socket = link.socket
    this.#p.retries.schedule(room, () => {
      // On another socket every room is asked for again anyway.
      if (socket !== link.socket || !this.#p.open() || rooms.isJoined(room)) return
      const direct = directs.get(room)?.id ?? userId
      if (direct !== undefined) this.direct(direct, directs.has(room) ? room : undefined, directs.askOf(direct))
      else if (rooms.wants(room)) this.room(room)
    })
  }
}
