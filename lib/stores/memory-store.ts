import type { ChatMessage } from '../protocol/wire.js'
import { FST_CHAT_INVALID_OPTION } from '../errors.js'
import { integerOption, refuseUnknownKeys, shown } from '../validate.js'
import { newEpoch } from './epoch.js'
import { CID_WINDOW } from './history-store.js'
import { MemoryReads } from './memory-reads.js'
import type { AppendResult, HistoryPage, HistoryStore, NewMessage, OlderPage } from './history-store.js'

interface RoomLog {
  epoch: string
  offset: number
  // Ring buffer: `start` is the index of the oldest kept message.
  messages: ChatMessage[]
  start: number
  // The latest cids with the message each produced, kept apart from the
  // messages so that a resend is recognized after its message was trimmed.
  // `cidRing` holds the same cids in arrival order, to forget the oldest.
  cids: Map<string, ChatMessage> | null
  cidRing: string[]
  cidCount: number
}

const OPTION_KEYS: ReadonlySet<string> = new Set(['size', 'maxRooms'])

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Messages kept per room. @default 100 */
  size?: number
  /** Rooms kept; the least recently written room is forgotten past this. @default 10000 */
  maxRooms?: number
}

/**
 * Keeps each room's latest messages, and its latest cids, in process memory.
 * A fresh store means fresh epochs, so clients resuming from before a restart
 * get `recovered: false`. It keeps no resume secret either: without the
 * `secret` option, each process signs resume tokens with a key of its own,
 * and clients come back from a restart under new ids.
 */
export class MemoryStore implements HistoryStore {
  #size: number
  #maxRooms: number
  // Rooms with messages, least recently written first.
  #rooms = new Map<string, RoomLog>()
  // Epochs handed out for rooms that were read but never written. Kept apart
  // so that clients probing many room names cannot evict real history.
  #unwritten = new Map<string, string>()
  readonly #reads = new MemoryReads()

  constructor (opts: MemoryStoreOptions = {}) {
    if (typeof opts !== 'object' || opts === null) throw new FST_CHAT_INVALID_OPTION('MemoryStore', `needs an options object, got ${shown(opts)}`)
    refuseUnknownKeys(opts, OPTION_KEYS, 'MemoryStore')
    this.#size = integerOption('MemoryStore.size', opts.size ?? 100, 0, 100_000)
    this.#maxRooms = integerOption('MemoryStore.maxRooms', opts.maxRooms ?? 10_000, 1)
  }

  #read (room: string): RoomLog {
    const log = this.#rooms.get(room)
    if (log !== undefined) return log
    let epoch = this.#unwritten.get(room)
    if (epoch === undefined) {
      epoch = newEpoch()
      this.#unwritten.set(room, epoch)
      if (this.#unwritten.size > this.#maxRooms) this.#unwritten.delete(this.#unwritten.keys().next().value as string)
    }
    return { epoch, offset: 0, messages: [], start: 0, cids: null, cidRing: [], cidCount: 0 }
  }

  #write (room: string): RoomLog {
    let log = this.#rooms.get(room)
    if (log !== undefined) {
      // Re-insert so the map stays ordered by last write.
      this.#rooms.delete(room)
    } else {
      const epoch = this.#unwritten.get(room) ?? newEpoch()
      this.#unwritten.delete(room)
      log = { epoch, offset: 0, messages: [], start: 0, cids: null, cidRing: [], cidCount: 0 }
      if (this.#rooms.size >= this.#maxRooms) this.#rooms.delete(this.#rooms.keys().next().value as string)
    }
    this.#rooms.set(room, log)
    return log
  }

  #latest (log: RoomLog, count: number): ChatMessage[] {
    const n = log.messages.length
    const out = new Array<ChatMessage>(Math.max(0, Math.min(Math.floor(count), n)))
    for (let i = 0; i < out.length; i++) {
      out[i] = log.messages[(log.start + n - out.length + i) % n] as ChatMessage
    }
    return out
  }

  async append (message: NewMessage): Promise<AppendResult> {
    const { cid } = message
    if (cid !== undefined) {
      const seen = this.#rooms.get(message.room)?.cids?.get(cid)
      if (seen !== undefined) return { message: seen, duplicate: true }
    }
    const log = this.#write(message.room)
    const stored: ChatMessage = { ...message, offset: ++log.offset }
    if (cid !== undefined) this.#remember(log, cid, stored)
    this.#keep(log, stored)
    return { message: stored, duplicate: false }
  }

  #remember (log: RoomLog, cid: string, stored: ChatMessage): void {
    log.cids ??= new Map()
    const slot = log.cidCount++ % CID_WINDOW
    const forgotten = log.cidRing[slot]
    if (forgotten !== undefined) log.cids.delete(forgotten)
    log.cidRing[slot] = cid
    log.cids.set(cid, stored)
  }

  #keep (log: RoomLog, stored: ChatMessage): void {
    if (this.#size === 0) return
    if (log.messages.length < this.#size) {
      log.messages.push(stored)
    } else {
      log.messages[log.start] = stored
      log.start = (log.start + 1) % this.#size
    }
  }

  async recent (room: string, limit: number): Promise<HistoryPage> {
    const log = this.#read(room)
    return { epoch: log.epoch, offset: log.offset, messages: this.#latest(log, limit) }
  }

  async since (room: string, offset: number): Promise<HistoryPage | null> {
    const log = this.#read(room)
    const missed = log.offset - offset
    if (missed < 0 || missed > log.messages.length) return null
    return { epoch: log.epoch, offset: log.offset, messages: this.#latest(log, missed) }
  }

  async before (room: string, offset: number, limit: number): Promise<OlderPage> {
    const log = this.#read(room)
    const n = log.messages.length
    // Kept offsets are consecutive: the ring holds `oldest` to `log.offset`.
    const oldest = log.offset - n + 1
    const end = Math.min(Math.floor(offset), log.offset + 1)
    const count = Math.max(0, Math.min(Math.floor(limit), end - oldest))
    const first = end - count
    const messages = new Array<ChatMessage>(count)
    for (let i = 0; i < count; i++) messages[i] = log.messages[(log.start + first - oldest + i) % n] as ChatMessage
    return { epoch: log.epoch, offset: log.offset, messages, more: first > oldest }
  }

  async entry (room: string, offset: number): Promise<ChatMessage | null> {
    const log = this.#rooms.get(room)
    if (log === undefined) return null
    const n = log.messages.length
    // Kept offsets are consecutive, the latest being log.offset.
    const back = log.offset - offset
    if (!Number.isInteger(back) || back < 0 || back >= n) return null
    return log.messages[(log.start + n - 1 - back) % n] as ChatMessage
  }

  async epoch (room: string): Promise<string> {
    return this.#read(room).epoch
  }

  async markRead (room: string, userId: string, offset: number): Promise<number | null> {
    const latest = this.#rooms.get(room)?.offset ?? 0
    return this.#reads.mark(room, userId, Math.min(offset, latest), latest)
  }

  async readPosition (room: string, userId: string): Promise<number> {
    return this.#reads.position(room, userId)
  }

  async readPositions (userId: string): Promise<Record<string, number>> {
    return this.#reads.positions(userId)
  }

  async close (): Promise<void> {
    this.#rooms.clear()
    this.#unwritten.clear()
    this.#reads.clear()
  }
}
