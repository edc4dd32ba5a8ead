import type { Broker } from '../broker/broker.js'
import type { ChatMessage } from '../protocol/wire.js'
import type { HistoryPage } from '../stores/history-store.js'
import type { Connection } from '../transport/connection.js'
import type { Connections } from '../transport/connections.js'

/**
 * Rooms whose position one socket remembers; past it the least recently
 * marked is forgotten. A socket is in at most `maxRoomsPerClient` rooms at
 * once, but may leave and join others without end.
 */
export const MAX_SOCKET_POSITIONS = 256

// Rooms app.chat.unread reads at once.
const UNREAD_READS_AT_ONCE = 16

/** A user's read position in a room and what is unread after it, as `joined` carries them. */
export interface ReadState {
  read: number
  unread: number
}

/** One socket's view of its position in one room. */
interface SocketRead {
  /** The furthest position this socket knows of (its own marks, its joins, its user's other sockets). */
  known: number
  /** The furthest position asked for while a write was on its way; written next. */
  wanted: number | null
  writing: boolean
}

/**
 * How many of `messages` (oldest first) after offset `read`, up to
 * `upTo`, are plain messages from someone else than `userId`. Entries with
 * a `type` (edits, deletes) change an earlier message and are not counted.
 */
export function countUnread (messages: readonly ChatMessage[], read: number, userId: string, upTo: number): number {
  let count = 0
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]
    if (message.offset <= read) break
    if (message.offset <= upTo && message.type === undefined && message.from.id !== userId) count++
  }
  return count
}

/**
 * Read positions: a user's `read` frames move their position in the store
 * (through the broker), and their other sockets in the room hear of it. A
 * socket has at most one write per room on its way; what it asks for
 * meanwhile is merged into the next (only the furthest counts), so a client
 * sending `read` in a loop costs one store write per round trip at most.
 * Guests (no `identify` id) and brokers that keep no positions have them
 * per socket only.
 */
export class Reads {
  readonly #broker: Broker
  readonly #connections: Connections
  readonly #historySize: number
  readonly #stored: boolean
  readonly #sockets = new WeakMap<Connection, Map<string, SocketRead>>()

  constructor (broker: Broker, connections: Connections, historySize: number) {
    this.#broker = broker
    this.#connections = connections
    this.#historySize = historySize
    this.#stored = typeof broker.markRead === 'function' && typeof broker.readPosition === 'function' && typeof broker.readPositions === 'function'
  }

  /** Whether `conn`'s positions are its user's, kept in the store, rather than its own. */
  #keeps (conn: Connection): boolean {
    return this.#stored && conn.identified
  }

  #entry (conn: Connection, room: string): SocketRead {
    let rooms = this.#sockets.get(conn)
    if (rooms === undefined) this.#sockets.set(conn, rooms = new Map())
    let entry = rooms.get(room)
    if (entry !== undefined) return entry
    entry = { known: 0, wanted: null, writing: false }
    rooms.set(room, entry)
    if (rooms.size > MAX_SOCKET_POSITIONS) {
      for (const [name, other] of rooms) {
        if (!other.writing) {
          rooms.delete(name)
          break
        }
      }
    }
    return entry
  }

  /** A `read` frame of a socket in `room`: moves the position forward; a lower or equal offset changes nothing. */
  mark (conn: Connection, room: string, offset: number): void {
    const entry = this.#entry(conn, room)
    if (offset <= entry.known || offset <= (entry.wanted ?? 0)) return
    entry.wanted = offset
    if (!entry.writing) {
      this.#write(conn, room, entry).catch((err: unknown) => conn.request.log.error({ err, room }, 'fastify-chat: a read position write failed'))
    }
  }

  async #write (conn: Connection, room: string, entry: SocketRead): Promise<void> {
    entry.writing = true
    try {
      while (entry.wanted !== null) {
        const offset = entry.wanted
        entry.wanted = null
        if (offset <= entry.known) continue
        let moved: number | null
        try {
          moved = await this.#move(conn, room, offset)
        } catch (err) {
          conn.request.log.warn({ err, room }, 'fastify-chat: could not keep a read position, the adapter or store is unavailable')
          if (!conn.closedByServer) conn.sendError('unavailable', 'the read position could not be kept, send it again', undefined, room)
          continue
        }
        if (moved !== null && moved > entry.known) entry.known = moved
      }
    } finally {
      entry.writing = false
    }
  }

  /** Moves the position to `offset` (at most the room's latest); the new one, or null. */
  async #move (conn: Connection, room: string, offset: number): Promise<number | null> {
    if (this.#keeps(conn)) return await (this.#broker.markRead as NonNullable<Broker['markRead']>)(room, conn.id, offset, conn.key)
    const { offset: latest } = await this.#broker.recent(room, 0)
    return Math.min(offset, latest)
  }

  /** The broker says user `userId`'s position in `room` moved: their sockets here in the room but `exclude` are told. */
  moved (room: string, userId: string, offset: number, exclude: string | null): void {
    for (const conn of this.#connections.ofUser(userId)) {
      if (conn.key === exclude || !conn.inRoom(room) || !conn.identified) continue
      const entry = this.#entry(conn, room)
      if (offset <= entry.known) continue
      entry.known = offset
      conn.send({ type: 'read', room, offset })
    }
  }

  /**
   * What `joined` carries for `conn` in `room`, whose replay is `page`
   * (`recovered`: it holds what followed the client's `since`, not the
   * latest history). Unread messages are counted among the latest
   * `historySize` at most: the count saturates there.
   */
  async joining (conn: Connection, room: string, page: HistoryPage, recovered: boolean): Promise<ReadState> {
    let read = this.#sockets.get(conn)?.get(room)?.known ?? 0
    if (this.#keeps(conn)) read = await (this.#broker.readPosition as NonNullable<Broker['readPosition']>)(room, conn.id)
    read = Math.min(read, page.offset)
    // A position beyond the room's latest (its history was lost) counts as the latest.
    this.#entry(conn, room).known = read
    if (read === page.offset) return { read, unread: 0 }
    const covered = page.offset - read <= page.messages.length
    const messages = covered || !recovered ? page.messages : (await this.#broker.recent(room, this.#historySize)).messages
    return { read, unread: countUnread(messages, read, conn.id, page.offset) }
  }

  /** What the `joined` of a reset (the room's history changed) carries: the socket's known position, no read. */
  rejoining (conn: Connection, room: string, page: HistoryPage): ReadState {
    const entry = this.#entry(conn, room)
    const read = Math.min(entry.known, page.offset)
    entry.known = read
    return { read, unread: countUnread(page.messages, read, conn.id, page.offset) }
  }

  /** User `userId`'s unread counts in every room they have a position in (each at most `historySize`). */
  async unreadOf (userId: string): Promise<Record<string, number>> {
    if (!this.#stored) return {}
    const positions = Object.entries(await (this.#broker.readPositions as NonNullable<Broker['readPositions']>)(userId))
    const counts: Array<[string, number]> = []
    for (let i = 0; i < positions.length; i += UNREAD_READS_AT_ONCE) {
      counts.push(...await Promise.all(positions.slice(i, i + UNREAD_READS_AT_ONCE).map(async ([room, position]): Promise<[string, number]> => {
        const page = await this.#broker.recent(room, this.#historySize)
        return [room, countUnread(page.messages, Math.min(position, page.offset), userId, page.offset)]
      })))
    }
    return Object.fromEntries(counts)
  }
}
