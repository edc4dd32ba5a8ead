// A room's messages as the page holds them: in offset order, with the edits
// and deletes that reached them applied. The server stores nothing in place:
// an edit or a delete is an entry of its own in the room's log, which may
// come before its message does (an older page loaded later brings the message).

/** Messages a room keeps before new ones push the oldest out, unless the user scrolled back past it. */
export const MAX_HELD = 500

/** What an edit or a delete makes of a message; the newest by offset wins, a delete for good. */
function change (entry) {
  return entry.type === 'delete'
    ? { at: entry.offset, deleted: true, text: '' }
    : { at: entry.offset, edited: true, text: entry.text, meta: entry.meta }
}

function applyChange (message, patch) {
  if (message.deleted || patch.at <= message.changedAt) return false
  message.changedAt = patch.at
  message.text = patch.text
  if (patch.deleted) {
    message.deleted = true
    delete message.meta
  } else {
    message.edited = true
    // An edit without meta keeps the message's: a reply stays a reply.
    if (patch.meta !== undefined) message.meta = patch.meta
  }
  return true
}

export class RoomLog {
  /** Oldest first. */
  #messages = []
  #byOffset = new Map()
  // Offset -> the change for a message not held: made before it was loaded, or kept when it was pushed out.
  #waiting = new Map()
  #cap = MAX_HELD
  /** The room's epoch, from its latest `joined`: a page of another one does not continue what is held. */
  epoch = null
  /** Bumped each time the log starts over, so a page asked for before is dropped. */
  generation = 0
  /** The lowest offset of any entry seen: the next older page ends below it. */
  edge = Infinity
  /** Whether the server may keep older entries than `edge`. */
  more = false
  loading = false

  get messages () {
    return this.#messages
  }

  get (offset) {
    return this.#byOffset.get(offset)
  }

  /**
   * A `joined`: its history follows what is held when it was recovered in
   * the same epoch, and replaces it otherwise (there may be a gap).
   */
  joined (frame) {
    if (!frame.recovered || frame.epoch !== this.epoch) {
      this.#messages = []
      this.#byOffset.clear()
      this.#waiting.clear()
      this.#cap = MAX_HELD
      this.generation++
      this.epoch = frame.epoch
      this.edge = frame.history[0]?.offset ?? frame.offset + 1
      this.more = this.edge > 1
    }
    for (const entry of frame.history) this.add(entry)
  }

  /** One entry, live or replayed: returns the message it added or changed, or null when it changed nothing held. */
  add (entry) {
    if (entry.offset < this.edge) this.edge = entry.offset
    if (entry.type === 'edit' || entry.type === 'delete') return this.#change(entry.of, change(entry))
    if (this.#byOffset.has(entry.offset)) return null
    const message = this.#message(entry)
    const last = this.#messages.at(-1)
    if (last === undefined || last.offset < entry.offset) {
      this.#messages.push(message)
    } else {
      const at = this.#messages.findIndex((held) => held.offset > entry.offset)
      this.#messages.splice(at, 0, message)
    }
    while (this.#messages.length > this.#cap) this.#pushOut()
    return message
  }

  /** An older page (oldest first, all below `edge`): its messages go in front, and the log may now hold more. */
  older (page) {
    const front = []
    for (const entry of page.messages) {
      if (entry.offset < this.edge) this.edge = entry.offset
      if (entry.type === 'edit' || entry.type === 'delete') {
        this.#change(entry.of, change(entry))
      } else if (!this.#byOffset.has(entry.offset) && (this.#messages[0] === undefined || entry.offset < this.#messages[0].offset)) {
        front.push(this.#message(entry))
      }
    }
    this.#messages = front.concat(this.#messages)
    this.#cap = Math.max(this.#cap, this.#messages.length)
    this.more = page.more && page.messages.length > 0
  }

  #message (entry) {
    const message = { offset: entry.offset, ts: entry.ts, from: entry.from, text: entry.text, changedAt: 0 }
    if (entry.meta !== undefined) message.meta = entry.meta
    if (entry.cid !== undefined) message.cid = entry.cid
    this.#byOffset.set(entry.offset, message)
    const waiting = this.#waiting.get(entry.offset)
    if (waiting !== undefined) {
      this.#waiting.delete(entry.offset)
      applyChange(message, waiting)
    }
    return message
  }

  #change (of, patch) {
    const message = this.#byOffset.get(of)
    if (message !== undefined) return applyChange(message, patch) ? message : null
    const known = this.#waiting.get(of)
    if (known === undefined || (!known.deleted && (patch.deleted || patch.at > known.at))) {
      this.#waiting.delete(of)
      this.#waiting.set(of, patch)
      if (this.#waiting.size > this.#cap) this.#waiting.delete(this.#waiting.keys().next().value)
    }
    return null
  }

  // The oldest message goes; what was done to it is kept, for when a page brings it back.
  #pushOut () {
    const message = this.#messages.shift()
    this.#byOffset.delete(message.offset)
    if (message.changedAt > 0) this.#change(message.offset, { at: message.changedAt, deleted: message.deleted, edited: message.edited, text: message.text, meta: message.meta })
    this.edge = this.#messages[0]?.offset ?? this.edge
    this.more = true
  }
}
