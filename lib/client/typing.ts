import type { MessageFrame, SignalFrame, SignalRequest, User } from '../protocol/wire.js'
import { checkRoom } from './checks.js'
import type { ChatEvents } from './types.js'
import type { Emitter } from './emitter.js'

/** The signal's name: the server's `signals` option must list it (its default does). */
export const TYPING_SIGNAL = 'typing'
/** Least time between two typing signals of this client to one room. */
export const TYPING_THROTTLE_MS = 2000
/** How long a user counts as typing after their last signal, unless a message of theirs comes first. */
export const TYPING_EXPIRY_MS = 5000
/** Users listed as typing in one room; past this, more are not tracked (a page shows "several people" long before). */
export const MAX_TYPING_USERS = 50

interface Typist {
  user: User
  /** performance.now() past which the entry is gone. */
  until: number
}

/**
 * Who is typing in each room, and this client's own typing signals. Sends
 * at most one signal per room every TYPING_THROTTLE_MS; lists a user for
 * TYPING_EXPIRY_MS after their last signal, or until their next message in
 * the room. One timer at most, for the earliest expiry. Emits `typing` with
 * a room's list whenever it changes.
 */
export class Typing {
  readonly #events: Emitter<ChatEvents>
  readonly #send: (frame: SignalRequest) => boolean
  // Room -> user id -> entry, in the order they started typing.
  readonly #rooms = new Map<string, Map<string, Typist>>()
  // Room -> when this client last sent a typing signal there.
  readonly #sent = new Map<string, number>()
  #timer: ReturnType<typeof setTimeout> | null = null
  #closed = false

  /** `send` writes a frame if the socket is open and says whether it did: signals are never queued. */
  constructor (events: Emitter<ChatEvents>, send: (frame: SignalRequest) => boolean) {
    this.#events = events
    this.#send = send
  }

  /**
   * Tells the room's other members this user is typing, unless a signal
   * went to `room` less than TYPING_THROTTLE_MS ago or the socket is not
   * open. Call it on every keystroke. Returns whether a signal was sent.
   */
  typing (room: string): boolean {
    checkRoom(room)
    const now = performance.now()
    const last = this.#sent.get(room)
    if (last !== undefined && now - last < TYPING_THROTTLE_MS) return false
    if (!this.#send({ type: 'signal', room, name: TYPING_SIGNAL })) return false
    this.#sent.set(room, now)
    return true
  }

  /** The users typing in `room` now, this user not included. */
  users (room: string): User[] {
    return [...(this.#rooms.get(room)?.values() ?? [])].map((typist) => typist.user)
  }

  /** A `signal` frame: a typing signal of another user lists them (again) for TYPING_EXPIRY_MS. `self`: this user's id. */
  onSignal (frame: SignalFrame, self: string | null): void {
    if (this.#closed || frame.name !== TYPING_SIGNAL || frame.from.id === self) return
    let room = this.#rooms.get(frame.room)
    const known = room?.get(frame.from.id)
    if (known === undefined && room !== undefined && room.size >= MAX_TYPING_USERS) return
    if (room === undefined) this.#rooms.set(frame.room, room = new Map())
    room.set(frame.from.id, { user: { id: frame.from.id, name: frame.from.name }, until: performance.now() + TYPING_EXPIRY_MS })
    this.#timer ??= setTimeout(this.#expire, TYPING_EXPIRY_MS)
    if (known === undefined || known.user.name !== frame.from.name) this.#emit(frame.room)
  }

  /**
   * A message: its sender is done typing. One of this user's own lets its
   * next keystroke in the room signal at once, since the others just
   * dropped it from their lists.
   */
  onMessage (frame: MessageFrame, self: string | null): void {
    if (frame.from.id === self) {
      this.#sent.delete(frame.room)
      return
    }
    const room = this.#rooms.get(frame.room)
    if (room?.delete(frame.from.id) !== true) return
    if (room.size === 0) this.#rooms.delete(frame.room)
    this.#emit(frame.room)
  }

  /** Out of `room` (left, removed, refused): nobody is typing there any more, as far as this client knows. */
  forget (room: string): void {
    this.#sent.delete(room)
    if (this.#rooms.delete(room)) this.#emit(room)
  }

  /** The socket dropped: what was known is stale, and signals after the reconnect will tell again. */
  dropped (): void {
    this.#sent.clear()
    const rooms = [...this.#rooms.keys()]
    this.#clear()
    for (const room of rooms) this.#emit(room)
  }

  /** The connection is closed: the timer stops, and nothing is emitted. */
  close (): void {
    this.#closed = true
    this.#sent.clear()
    this.#clear()
  }

  #clear (): void {
    this.#rooms.clear()
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  // Drops the entries whose time is up, then waits for the earliest left.
  readonly #expire = (): void => {
    this.#timer = null
    const now = performance.now()
    let next = Infinity
    for (const [name, room] of this.#rooms) {
      let changed = false
      for (const [id, typist] of room) {
        if (typist.until <= now) {
          room.delete(id)
          changed = true
        } else if (typist.until < next) next = typist.until
      }
      if (room.size === 0) this.#rooms.delete(name)
      if (changed) this.#emit(name)
    }
    // A listener may have closed the connection meanwhile.
    if (next !== Infinity && !this.#closed) this.#timer = setTimeout(this.#expire, next - now)
  }

  #emit (room: string): void {
    this.#events.emit('typing', { room, users: this.users(room) })
  }
}
