import type { ChatMessage, User } from '../protocol/wire.js'

/**
 * A message as the client shows it: with the edits and the delete that
 * reached it applied. `text` is the latest, empty once deleted; `meta` the
 * message's, or the latest edit's that carried one, absent once deleted.
 */
export interface AppliedMessage extends Omit<ChatMessage, 'type' | 'of'> {
  /** The latest edit applied: when, by whom (the author or a moderator), and its own offset. */
  edited?: { ts: number, by: User, offset: number }
  /** Set once deleted: when, by whom, and the delete's own offset. */
  deleted?: { ts: number, by: User, offset: number }
}

/** A log entry as the client receives it: a stored entry, or a live frame of one. */
type Entry = Omit<ChatMessage, 'type' | 'text'> & { type?: string, text?: string }

/**
 * The client's applied view of its rooms: each message it holds, with the
 * edits and deletes that followed it applied. The server stores nothing in
 * place: an edit or a delete is an entry of its own, and this is where they
 * meet their message. Bounded like what the client holds: the latest
 * `perRoom` messages of each room it is in; an edit of an older one changes
 * nothing here. An edit or a delete of a message shown deleted changes
 * nothing either (two clients may race the server's checks).
 */
export class Edits {
  readonly #perRoom: number
  // Per room, by offset, in arrival order (which is offset order within an epoch).
  readonly #rooms = new Map<string, Map<number, AppliedMessage>>()

  constructor (perRoom = 500) {
    if (!Number.isInteger(perRoom) || perRoom < 1) throw new TypeError('perRoom must be an integer >= 1')
    this.#perRoom = perRoom
  }

  /**
   * Takes in one entry of a room's log. A message is added; an edit or a
   * delete is applied to its message and returns it, or returns `null` when
   * it changes nothing here (the message is not held, or is deleted).
   */
  apply (entry: Entry): AppliedMessage | null {
    if (entry.type === 'edit' || entry.type === 'delete') return this.#amend(entry)
    const message: AppliedMessage = { room: entry.room, offset: entry.offset, ts: entry.ts, from: entry.from, text: entry.text ?? '' }
    if (entry.cid !== undefined) message.cid = entry.cid
    if (entry.meta !== undefined) message.meta = entry.meta
    let room = this.#rooms.get(entry.room)
    if (room === undefined) this.#rooms.set(entry.room, room = new Map())
    room.set(entry.offset, message)
    if (room.size > this.#perRoom) room.delete(room.keys().next().value as number)
    return message
  }

  #amend (entry: Entry): AppliedMessage | null {
    const message = this.#rooms.get(entry.room)?.get(entry.of as number)
    if (message === undefined || message.deleted !== undefined) return null
    const by = { ts: entry.ts, by: entry.from, offset: entry.offset }
    if (entry.type === 'edit') {
      message.text = entry.text ?? ''
      // An edit without meta keeps the message's (a reply stays a reply).
      if (entry.meta !== undefined) message.meta = entry.meta
      message.edited = by
    } else {
      message.text = ''
      delete message.meta
      message.deleted = by
    }
    return message
  }

  /** The message at `offset` of `room`, as applied, if the client holds it. */
  message (room: string, offset: number): AppliedMessage | undefined {
    const message = this.#rooms.get(room)?.get(offset)
    return message === undefined ? undefined : { ...message }
  }

  /** The messages the client holds of `room`, as applied, in arrival order. */
  view (room: string): AppliedMessage[] {
    return Array.from(this.#rooms.get(room)?.values() ?? [], (message) => ({ ...message }))
  }

  /** Forgets `room`: left, or its history started over (a reset). */
  forget (room: string): void {
    this.#rooms.delete(room)
  }

  clear (): void {
    this.#rooms.clear()
  }
}
