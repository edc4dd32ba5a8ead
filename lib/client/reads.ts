import type { ChatMessage, JoinedFrame, MessageFrame } from '../protocol/wire.js'
import type { Emitter } from './emitter.js'
import type { ChatEvents, RoomUnread } from './types.js'

// Offsets of unread messages remembered per room; older ones are only counted.
const MAX_KNOWN = 1000

/** One room's read position and what is unread after it. */
interface RoomState {
  epoch: string
  read: number
  /** The latest offset seen in the room. */
  latest: number
  /** Offsets of the unread messages this client has seen, oldest first, all after `read`. */
  known: number[]
  /** Unread messages the server counted that this client never saw: all older than `known[0]`. */
  unseen: number
}

// A live frame says `message`; a stored entry has no type unless it is an edit or a delete.
function counts (message: ChatMessage | MessageFrame, me: string | null): boolean {
  // A stored entry has no type when it is a message; a live frame says `message`.
  const { type } = message
  return (type === undefined || type === 'message') && message.from.id !== me
}

/**
 * Per room, the user's read position and unread count: from `joined`, then
 * moved by this client's `read` calls and the `read` frames of the user's
 * other tabs, and raised by each new message from someone else.
 */
export class Reads {
  readonly #events: Emitter<ChatEvents>
  readonly #rooms = new Map<string, RoomState>()

  constructor (events: Emitter<ChatEvents>) {
    this.#events = events
  }

  /** The room's position and unread count, if it was joined. */
  get (room: string): RoomUnread | undefined {
    const state = this.#rooms.get(room)
    return state === undefined ? undefined : { room, read: state.read, unread: state.unseen + state.known.length }
  }

  /** The latest offset seen in `room`, 0 before its `joined`. */
  latest (room: string): number {
    return this.#rooms.get(room)?.latest ?? 0
  }

  /**
   * Takes the server's position and count from `joined` (`me`: this user's
   * id). Returns the position to send again when this client had read
   * further in the same epoch (a `read` made while the socket was down).
   */
  onJoined (frame: JoinedFrame, me: string | null): number | null {
    const before = this.#rooms.get(frame.room)
    const ahead = before !== undefined && before.epoch === frame.epoch && before.read > (frame.read ?? 0) ? before.read : null
    const read = Math.min(ahead ?? frame.read ?? 0, frame.offset)
    const known = frame.history.filter((message) => message.offset > read && counts(message, me)).map((message) => message.offset)
    const unread = ahead === null ? frame.unread ?? known.length : known.length
    if (known.length > unread) known.splice(0, known.length - unread)
    this.#rooms.set(frame.room, { epoch: frame.epoch, read, latest: frame.offset, known, unseen: unread - known.length })
    this.#emit(frame.room)
    return ahead
  }

  /** A new message (not seen before) in a joined room. */
  onMessage (message: ChatMessage | MessageFrame, me: string | null): void {
    const state = this.#rooms.get(message.room)
    if (state === undefined) return
    state.latest = Math.max(state.latest, message.offset)
    if (message.offset <= state.read || !counts(message, me)) return
    state.known.push(message.offset)
    if (state.known.length > MAX_KNOWN) {
      state.known.shift()
      state.unseen++
    }
    this.#emit(message.room)
  }

  /** The position moved to `offset` (this client's call, or another tab's `read` frame); a lower one changes nothing. */
  moved (room: string, offset: number): boolean {
    const state = this.#rooms.get(room)
    if (state === undefined || offset <= state.read) return false
    state.read = offset
    const first = state.known[0]
    if (offset >= state.latest || (first !== undefined && offset >= first)) state.unseen = 0
    const kept = state.known.findIndex((known) => known > offset)
    state.known.splice(0, kept === -1 ? state.known.length : kept)
    this.#emit(room)
    return true
  }

  /** Out of `room` for good. */
  delete (room: string): void {
    this.#rooms.delete(room)
  }

  #emit (room: string): void {
    this.#events.emit('unread', this.get(room) as RoomUnread)
  }
}
