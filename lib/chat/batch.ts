import type { ChatMessage } from '../protocol/wire.js'

/** Whoever a batch entry must skip, and what a recipient is for that check. */
export interface Recipient {
  /** The connection key, if one was ever handed out (only then can it be excluded). */
  readonly keyIfSet: string | null
  readonly id: string
}

interface Entry {
  text: string
  /** UTF-8 length of `text`. */
  length: number
  /** The stored message, for sockets that hold live messages back during a join; null for presence. */
  message: ChatMessage | null
  /** Connection key that must not get it: the sender, when echo is off. */
  excludeKey: string | null
  /** User whose sockets must not get it: a user is not told of their own presence. */
  excludeUser: string | null
}

function headerLength (length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10
}

/** Writes an unmasked text frame (RFC 6455 §5.2: FIN + opcode 1, length, payload) at `at`; returns where it ends. */
function writeFrame (target: Buffer, at: number, entry: { text: string, length: number }): number {
  const { length } = entry
  target[at] = 0x81
  if (length < 126) {
    target[at + 1] = length
    at += 2
  } else if (length < 65536) {
    target[at + 1] = 126
    target.writeUInt16BE(length, at + 2)
    at += 4
  } else {
    target[at + 1] = 127
    target.writeUInt32BE(Math.floor(length / 2 ** 32), at + 2)
    target.writeUInt32BE(length >>> 0, at + 6)
    at += 10
  }
  return at + target.write(entry.text, at, length, 'utf8')
}

/**
 * The header of a text frame for a single socket, as a Latin-1 string, when
 * the text is ASCII (as JSON of ASCII names and texts is): a frame written
 * from strings needs no Buffer, and the large ones (a `joined` frame listing
 * a room's users) would each need memory outside the JS heap. Null when the
 * text needs {@link frameText} instead. Write both with the 'latin1' encoding.
 */
export function asciiHeader (text: string): string | null {
  const { length } = text
  if (Buffer.byteLength(text) !== length) return null
  if (length < 126) return String.fromCharCode(0x81, length)
  if (length < 65536) return String.fromCharCode(0x81, 126, length >>> 8, length & 0xff)
  return null
}

/** One text frame, for a single socket. */
export function frameText (text: string): Buffer {
  const length = Buffer.byteLength(text)
  const frame = Buffer.allocUnsafe(headerLength(length) + length)
  writeFrame(frame, 0, { text, length })
  return frame
}

function skips (entry: Entry, to: Recipient): boolean {
  return (entry.excludeUser !== null && entry.excludeUser === to.id) ||
    (entry.excludeKey !== null && entry.excludeKey === to.keyIfSet)
}

/**
 * What one room has to send in one event-loop iteration: every message and
 * presence event, each encoded once, framed together into one buffer that
 * every member gets in one write. A burst of messages then costs each
 * recipient one write (one system call), and the per-recipient work is done
 * once per batch rather than once per message.
 */
export class Batch {
  readonly entries: Entry[] = []
  /** Framed bytes so far. */
  bytes = 0
  /** Message entries (deliveries per recipient that gets all of them). */
  messages = 0
  // Who some entry skips, as sets: checking a recipient is then one lookup
  // per kind, not one comparison per entry. All null: nobody is skipped.
  #skipKeys: Set<string> | null = null
  #skipUsers: Set<string> | null = null
  // Members that joined after this batch began, with the entries they came too late for.
  #newcomers: Map<Recipient, number> | null = null
  #frames: Buffer | null = null

  add (text: string, message: ChatMessage | null, excludeKey: string | null, excludeUser: string | null): void {
    const length = Buffer.byteLength(text)
    this.entries.push({ text, length, message, excludeKey, excludeUser })
    this.bytes += headerLength(length) + length
    if (message !== null) this.messages++
    if (excludeKey !== null) (this.#skipKeys ??= new Set()).add(excludeKey)
    if (excludeUser !== null) (this.#skipUsers ??= new Set()).add(excludeUser)
    this.#frames = null
  }

  /** `to` joined the room now: it gets only the entries added from now on. */
  joined (to: Recipient): void {
    if (this.entries.length === 0) return
    (this.#newcomers ??= new Map()).set(to, this.entries.length)
  }

  /** Every entry, framed, in one buffer: built once per batch, whatever the number of recipients. */
  get frames (): Buffer {
    if (this.#frames !== null) return this.#frames
    const frames = Buffer.allocUnsafe(this.bytes)
    let at = 0
    for (const entry of this.entries) at = writeFrame(frames, at, entry)
    this.#frames = frames
    return frames
  }

  /** Whether every recipient gets every entry: nobody is skipped and nobody joined midway. */
  get uniform (): boolean {
    return this.#newcomers === null && this.#skipUsers === null && this.#skipKeys === null
  }

  /** Whether `to` misses any entry (then it gets {@link framesFor} instead of {@link frames}). */
  skips (to: Recipient): boolean {
    return (this.#newcomers !== null && this.#newcomers.has(to)) ||
      (this.#skipUsers !== null && this.#skipUsers.has(to.id)) ||
      (this.#skipKeys !== null && to.keyIfSet !== null && this.#skipKeys.has(to.keyIfSet))
  }

  /** The entries `to` gets, framed; null when it gets none. */
  framesFor (to: Recipient): Buffer | null {
    const entries = this.entriesFor(to)
    let bytes = 0
    for (const entry of entries) bytes += headerLength(entry.length) + entry.length
    if (bytes === 0) return null
    const frames = Buffer.allocUnsafe(bytes)
    let at = 0
    for (const entry of entries) at = writeFrame(frames, at, entry)
    return frames
  }

  /** The message entries `to` gets. */
  messagesFor (to: Recipient): number {
    if (!this.skips(to)) return this.messages
    let n = 0
    for (const entry of this.entriesFor(to)) if (entry.message !== null) n++
    return n
  }

  /** The entries `to` gets: for sockets that go through ws's own `send()`, or hold live messages back. */
  entriesFor (to: Recipient): Entry[] {
    const { entries } = this
    const start = this.#newcomers?.get(to) ?? 0
    if (start === 0 && !this.skips(to)) return entries
    const out: Entry[] = []
    for (let i = start; i < entries.length; i++) {
      if (!skips(entries[i], to)) out.push(entries[i])
    }
    return out
  }
}
