import type { ChatMessage, DeleteFrame, EditFrame, ErrorFrame, JoinedFrame, MessageFrame, ServerFrame, WelcomeFrame } from '../protocol/wire.js'
import type { Joins } from './joins.js'
import type { Parts } from './parts.js'

/** What each frame from the server does to a connection's state, and the events it emits. */
export class Inbox {
  readonly #p: Parts
  readonly #joins: Joins
  // The connection's own part of a welcome: resend what waited, then open.
  readonly #welcomed: () => void

  constructor (parts: Parts, joins: Joins, welcomed: () => void) {
    this.#p = parts
    this.#joins = joins
    this.#welcomed = welcomed
  }

  receive (data: string): void {
    let frame: ServerFrame
    try {
      frame = JSON.parse(data)
    } catch {
      return
    }
    const { rooms, me, roster, events } = this.#p
    switch (frame.type) {
      case 'welcome': return this.#welcome(frame)
      case 'joined': return this.#onJoined(frame)
      case 'message': return this.#onMessage(frame)
      case 'edit':
      case 'delete': return this.#onAmendment(frame)
      case 'left':
        // Asked for, or `removed` by the app: either way not to be rejoined.
        rooms.left(frame.room)
        this.#forget(frame.room)
        return events.emit('left', frame)
      case 'renamed':
        me.name = frame.name
        // Presence tells the others; this client's own entries follow here.
        if (me.id !== null) roster.rename(me.id, frame.name)
        return events.emit('renamed', frame)
      case 'presence':
        roster.onPresence(frame)
        return events.emit('presence', frame)
      case 'occupancy': return roster.setCount(frame.room, frame.count)
      case 'members': return roster.onMembers(frame)
      case 'history': return this.#p.scrollback.onHistory(frame)
      case 'signal':
        this.#p.typing.onSignal(frame, me.id)
        return events.emit('signal', frame)
      case 'read':
        this.#p.reads.moved(frame.room, frame.offset)
        return
      case 'refreshed':
        me.expiresAt = frame.expiresAt
        return events.emit('refreshed', frame)
      case 'error':
        // A members() or history() request's error is its promise's to tell.
        if (roster.onError(frame.cid, frame.code, frame.message)) return
        if (this.#p.scrollback.onError(frame.cid, frame.code, frame.message)) return
        this.#onError(frame)
        return events.emit('error', frame)
    }
  }

  #welcome (frame: WelcomeFrame): void {
    this.#p.link.opened()
    this.#p.me.welcome(frame)
    this.#p.events.emit('welcome', frame)
    this.#welcomed()
  }

  #onJoined (frame: JoinedFrame): void {
    const { retries, sends, directs, rooms, roster, events } = this.#p
    retries.stop(frame.room)
    for (const message of frame.history) sends.settled(message.cid)
    if (frame.with !== undefined) directs.joined(frame.room, frame.with)
    const { reset, history } = rooms.onJoined(frame, directs.has(frame.room))
    const before = roster.start(frame)
    this.#p.scrollback.onJoined(frame)
    // Without recovery, what the view held may not continue this history.
    if (!frame.recovered) this.#p.edits.forget(frame.room)
    const amended = history.filter((entry) => this.#applies(entry) && entry.type !== undefined)
    if (reset) events.emit('reset', frame)
    events.emit('joined', history === frame.history ? frame : { ...frame, history })
    // Read further while the socket was down: the server hears it now.
    const ahead = this.#p.reads.onJoined(frame, this.#p.me.id)
    if (ahead !== null) this.#p.link.write({ type: 'read', room: frame.room, offset: ahead })
    if (before !== frame.count) events.emit('count', { room: frame.room, count: frame.count })
    for (const entry of amended) this.#emitAmendment(entry)
  }

  #onMessage (frame: MessageFrame): void {
    this.#p.sends.settled(frame.cid)
    if (!this.#p.rooms.onMessage(frame)) return
    this.#p.typing.onMessage(frame, this.#p.me.id)
    this.#p.reads.onMessage(frame, this.#p.me.id)
    this.#p.edits.apply(frame)
    this.#p.events.emit('message', frame)
  }

  #onAmendment (frame: EditFrame | DeleteFrame): void {
    this.#p.sends.settled(frame.cid)
    if (!this.#p.rooms.onMessage(frame)) return
    if (!this.#applies(frame)) return
    if (frame.type === 'edit') this.#p.events.emit('edit', frame)
    else this.#p.events.emit('delete', frame)
  }

  /** Applies an entry to the view: false for an edit or delete of a message it shows deleted, which is no news. */
  #applies (entry: ChatMessage | EditFrame | DeleteFrame): boolean {
    const { edits } = this.#p
    return edits.apply(entry) !== null || edits.message(entry.room, entry.of as number)?.deleted === undefined
  }

  /** The event of an edit or a delete replayed in a `joined`, as its live frame would have it. */
  #emitAmendment (entry: ChatMessage): void {
    const { type, text, ...rest } = entry
    const of = entry.of as number
    if (type === 'edit') this.#p.events.emit('edit', { ...rest, type, of, text })
    else this.#p.events.emit('delete', { ...rest, type: 'delete', of })
  }

  #onError (frame: ErrorFrame): void {
    const { cid, code, room } = frame
    const { sends, directs, rooms } = this.#p
    sends.settled(cid)
    const direct = directs.askedBy(cid)
    // Asking again would get the same answer.
    if (direct !== undefined && (code === 'forbidden' || code === 'invalid_message')) directs.dropAsk(direct)
    // A refused publish is `forbidden` too, with the message's cid: the room
    // stays. Joins carry no cid, but openDirect's.
    const aboutJoin = room !== undefined && (cid === undefined || direct !== undefined)
    if (code === 'unavailable' && aboutJoin) this.#joins.retry(room, direct)
    if (code === 'forbidden' && aboutJoin) {
      rooms.refused(room)
      this.#forget(room)
    }
  }

  /** Out of `room` for good: no direct room, no users, no retry. */
  #forget (room: string): void {
    this.#p.directs.delete(room)
    this.#p.roster.delete(room)
    this.#p.retries.stop(room)
    this.#p.typing.forget(room)
    this.#p.scrollback.forget(room)
    this.#p.edits.forget(room)
    this.#p.reads.delete(room)
  }
}
