import { headerLength, writeFrame } from '../protocol/frame.js'
import type { ChatMessage } from '../protocol/wire.js'

/** Whoever a batch entry must skip, and what a recipient is for that check. */
export interface Recipient {
  /** The connection key: what `exclude` names. */
  readonly key: string
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
  /** A signal: not held for a member whose join replays, and left out for one that is behind. */
  signal: boolean
}

function skips (entry: Entry, to: Recipient): boolean {
  return (entry.excludeUser !== null && entry.excludeUser === to.id) ||
    (entry.excludeKey !== null && entry.excludeKey === to.key)
}

/**
 * What one room has to send in one event-loop iteration: every message,
 * presence event and signal, each encoded once, framed together into one buffer that
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
  /** Signal entries. */
  signals = 0
  // Who some entry skips, as sets: checking a recipient is then one lookup
  // per kind, not one comparison per entry. All null: nobody is skipped.
  #skipKeys: Set<string> | null = null
  #skipUsers: Set<string> | null = null
  // Members that joined after this batch began, with the entries they came too late for.
  #newcomers: Map<Recipient, number> | null = null
  // Members whose `joined` replayed messages of this batch, with the offset it replayed to.
  #floors: ReadonlyMap<Recipient, number> | null = null
  #frames: Buffer | null = null

  add (text: string, message: ChatMessage | null, excludeKey: string | null, excludeUser: string | null, signal = false): void {
    const length = Buffer.byteLength(text)
    this.entries.push({ text, length, message, excludeKey, excludeUser, signal })
    this.bytes += headerLength(length) + length
    if (message !== null) this.messages++
    if (signal) this.signals++
    if (excludeKey !== null) (this.#skipKeys ??= new Set()).add(excludeKey)
    if (excludeUser !== null) (this.#skipUsers ??= new Set()).add(excludeUser)
    this.#frames = null
  }

  /** `to` joined the room now: it gets only the entries added from now on. */
  joined (to: Recipient): void {
    if (this.entries.length === 0) return
    (this.#newcomers ??= new Map()).set(to, this.entries.length)
  }

  /**
   * Each of `floors` (a member, and the offset its `joined` replayed to)
   * does not get the messages at or below that offset: it has them already.
   */
  below (floors: ReadonlyMap<Recipient, number>): void {
    this.#floors = floors
  }

  /** Every entry, framed, in one buffer: built once per batch, whatever the number of recipients. */
  get frames (): Buffer {
    if (this.#frames !== null) return this.#frames
    const frames = Buffer.allocUnsafe(this.bytes)
    let at = 0
    for (const entry of this.entries) at = writeFrame(frames, at, entry.text, entry.length)
    this.#frames = frames
    return frames
  }

  /** Whether every recipient gets every entry: nobody is skipped, nobody joined midway, nobody has a floor. */
  get uniform (): boolean {
    return this.#newcomers === null && this.#skipUsers === null && this.#skipKeys === null && this.#floors === null
  }

  /** Whether `to` misses any entry (then it gets {@link framesFor} instead of {@link frames}). */
  skips (to: Recipient): boolean {
    return (this.#newcomers !== null && this.#newcomers.has(to)) ||
      (this.#floors !== null && this.#floors.has(to)) ||
      (this.#skipUsers !== null && this.#skipUsers.has(to.id)) ||
      (this.#skipKeys !== null && this.#skipKeys.has(to.key))
  }

  /** The entries `to` gets (without the signals unless `signals`), framed; null when it gets none. */
  framesFor (to: Recipient, signals = true): Buffer | null {
    const entries = this.entriesFor(to, signals)
    let bytes = 0
    for (const entry of entries) bytes += headerLength(entry.length) + entry.length
    if (bytes === 0) return null
    const frames = Buffer.allocUnsafe(bytes)
    let at = 0
    for (const entry of entries) at = writeFrame(frames, at, entry.text, entry.length)
    return frames
  }

  /** The message entries `to` gets. */
  messagesFor (to: Recipient): number {
    if (!this.skips(to)) return this.messages
    let n = 0
    for (const entry of this.entriesFor(to)) if (entry.message !== null) n++
    return n
  }

  /** Whether `to` gets any of the signals. */
  signalsFor (to: Recipient): boolean {
    return this.signals > 0 && this.entriesFor(to).some((entry) => entry.signal)
  }

  /**
   * The entries `to` gets (without the signals unless `signals`): for
   * sockets that go through ws's own `send()`, hold live messages back, or are behind.
   */
  entriesFor (to: Recipient, signals = true): Entry[] {
    const { entries } = this
    const start = this.#newcomers?.get(to) ?? 0
    const noSignals = !signals && this.signals > 0
    if (start === 0 && !noSignals && !this.skips(to)) return entries
    const floor = this.#floors?.get(to) ?? -1
    const out: Entry[] = []
    for (let i = start; i < entries.length; i++) {
      const entry = entries[i]
      if (!skips(entry, to) && !(noSignals && entry.signal) && (entry.message === null || entry.message.offset > floor)) out.push(entry)
    }
    return out
  }
}
