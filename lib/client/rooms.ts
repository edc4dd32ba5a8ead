import type { JoinedFrame, MessageFrame, Since } from '../protocol/wire.js'

/**
 * The rooms to be in and where each stopped: what a (re)connect asks for,
 * which `joined` frames were asked for on the current socket, and the cursor
 * that resumes each room and drops what was already shown.
 */
export class Rooms {
  // Rooms to be in, in order: the first one rides in the URL on every (re)connect.
  #wanted = new Set<string>()
  // The URL named no room: until the first `joined`, connect without one so
  // the server's default room is joined too, not replaced by the first of `rooms`.
  #defaultRoom = true
  // The room that rode in the current socket's URL; the others join after welcome.
  #urlRoom: string | undefined
  // Rooms the server has confirmed with `joined` on the current socket.
  #joined = new Set<string>()
  // Joins asked for on the current socket and not answered yet, per room: a
  // `joined` beyond them, for a room already joined, is the server starting it over.
  #asked = new Map<string, number>()
  #cursors = new Map<string, Since>()

  /** The URL's room, and its `since` (`epoch:offset`) if any: joined with the upgrade. */
  first (room: string, since: string): void {
    this.#defaultRoom = false
    this.#wanted.add(room)
    const sep = since.lastIndexOf(':')
    if (sep > 0) this.#cursors.set(room, { epoch: since.slice(0, sep), offset: Number(since.slice(sep + 1)) || 0 })
  }

  want (room: string): void { this.#wanted.add(room) }
  wants (room: string): boolean { return this.#wanted.has(room) }
  /** Not to be rejoined; says whether it was wanted. */
  unwant (room: string): boolean { return this.#wanted.delete(room) }

  get joined (): string[] { return [...this.#joined] }
  isJoined (room: string): boolean { return this.#joined.has(room) }
  /** Left `room`: not in it, and not to be rejoined. */
  left (room: string): void {
    this.#joined.delete(room)
    this.#wanted.delete(room)
  }

  /** The server refused `room`: asking again would get the same answer. */
  refused (room: string): void {
    this.left(room)
    this.#asked.delete(room)
  }

  /** A socket is gone: nothing is joined on the next until it says so. */
  dropped (): void { this.#joined.clear() }

  /** A fresh socket: the room (and its cursor) to join with the upgrade, if any; the others join after welcome. */
  dial (): { room: string, since: Since | undefined } | undefined {
    const first = this.#defaultRoom ? undefined : this.#wanted.values().next().value
    this.#urlRoom = first
    this.#asked = new Map<string, number>(first === undefined ? [] : [[first, 1]])
    return first === undefined ? undefined : { room: first, since: this.#cursors.get(first) }
  }

  /** The rooms a fresh socket joins after welcome. */
  rejoins (): string[] {
    return [...this.#wanted].filter((room) => room !== this.#urlRoom)
  }

  /** A join of `room` goes out: returns the cursor to resume it from (a copy), if any. */
  asking (room: string): Since | undefined {
    this.#asked.set(room, (this.#asked.get(room) ?? 0) + 1)
    const since = this.#cursors.get(room)
    return since === undefined ? undefined : { ...since }
  }

  /** One join of `room` asked on this socket is answered; returns how many were waiting. */
  answered (room: string): number {
    const asked = this.#asked.get(room) ?? 0
    if (asked > 1) this.#asked.set(room, asked - 1)
    else this.#asked.delete(room)
    return asked
  }

  /**
   * Takes in a `joined` (of a direct room when `direct`, which is not
   * rejoined by name): whether it is a reset, and its history without what
   * was already seen.
   */
  onJoined (frame: JoinedFrame, direct: boolean): { reset: boolean, history: JoinedFrame['history'] } {
    const asked = this.answered(frame.room)
    // Not asked for: the room's history changed under the server, so the offsets seen so far mean nothing.
    const reset = asked === 0 && this.#joined.has(frame.room)
    const seen = this.#cursors.get(frame.room)
    let history = frame.history
    if (!reset && frame.recovered && seen !== undefined && seen.epoch === frame.epoch) {
      // A join while already in the room can replay what has arrived live since the join was sent.
      history = history.filter((m) => m.offset > seen.offset)
      this.#cursors.set(frame.room, { epoch: frame.epoch, offset: Math.max(seen.offset, frame.offset) })
    } else {
      this.#cursors.set(frame.room, { epoch: frame.epoch, offset: frame.offset })
    }
    this.#defaultRoom = false
    if (!direct) this.#wanted.add(frame.room)
    else this.#wanted.delete(frame.room)
    this.#joined.add(frame.room)
    return { reset, history }
  }

  /** Moves the room's cursor past `frame`; false when it was seen already. */
  onMessage (frame: Pick<MessageFrame, 'room' | 'offset'>): boolean {
    const seen = this.#cursors.get(frame.room)
    if (seen === undefined) return true
    if (frame.offset <= seen.offset) return false
    seen.offset = frame.offset
    return true
  }
}
