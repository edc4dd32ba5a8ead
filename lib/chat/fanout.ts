import { Delivery } from '../transport/connection.js'
import type { Connection } from '../transport/connection.js'
import type { Stats } from '../stats.js'
import { Batch } from './batch.js'
import type { Room } from './rooms.js'
import { encodeMessage } from '../protocol/codec.js'
import type { ChatMessage } from '../protocol/wire.js'

// A room's batch is written out early once it holds this much, which bounds
// both the buffer built per batch and how far one write can take a socket
// past maxBufferedBytes.
export const MAX_BATCH_BYTES = 64 * 1024
// Presence alone waits this long before it is written, so that a burst of
// joins (a deploy, a reconnect storm) reaches each member in a few writes
// instead of one per join: filling a room of n is then far from n² writes.
export const PRESENCE_DELAY_MS = 20
// Messages are written at the end of the event-loop iteration that handled
// them, but no sooner than this after the previous write-out. Under steady
// traffic (messages from many senders, each in its own iteration) a socket
// then gets at most one write per interval, whatever the timing of arrivals;
// after a quiet spell the first message goes out in the same iteration.
export const FLUSH_INTERVAL_MS = 1
const CONGESTION_WINDOW_MS = 20

/** Where a member's share of a batch goes while its join of the room replays history. */
export interface Holding {
  hold (conn: Connection, held: Array<ChatMessage | string>, batch: Batch): void
}

/**
 * Writes what rooms send: everything a room sends in one event-loop
 * iteration (messages, presence, signals) goes into one {@link Batch},
 * framed once, and each member gets it in one write. Also tells when this server writes less than it is asked
 * to (congestion), so new messages can be refused before every reader lags.
 */
export class Fanout {
  readonly #stats: Stats
  readonly #holding: Holding
  // Rooms with a batch to write, and the timers of the next write-out.
  #pending: Room<Connection>[] = []
  #flushing: NodeJS.Immediate | null = null
  #flushSoon: NodeJS.Timeout | null = null
  #presenceFlush: NodeJS.Timeout | null = null
  #flushedAt = -Infinity
  #congestedAt = -Infinity

  constructor (stats: Stats, holding: Holding) {
    this.#stats = stats
    this.#holding = holding
  }

  /** Whether a recent write-out found much of its room falling behind. */
  get congested (): boolean {
    return performance.now() - this.#congestedAt < CONGESTION_WINDOW_MS
  }

  /** Queues a stored message for the room's members, encoded once; `exclude` is a connection key to skip. */
  message (room: Room<Connection>, message: ChatMessage, exclude: string | null): void {
    room.latest = message.offset
    this.#queue(room).add(encodeMessage(message), message, exclude, null)
    this.#scheduleFlush()
    this.#flushIfFull(room)
  }

  /**
   * Queues an encoded presence or occupancy frame for the room's members,
   * except `user`'s sockets (when not null); written within PRESENCE_DELAY_MS.
   */
  presence (room: Room<Connection>, frame: string, user: string | null): void {
    // Batched with the room's messages, so they keep their order with them.
    this.#queue(room).add(frame, null, null, user)
    this.#presenceFlush ??= setTimeout(this.flush, PRESENCE_DELAY_MS)
    this.#flushIfFull(room)
  }

  /**
   * Queues an encoded signal for the room's members but the socket `exclude`:
   * it goes out in the same write as the room's messages. While the server
   * is congested it is dropped at once and counted once as `signal_shed`
   * (not per member: that would cost a pass over the room, at the moment
   * the server has least to spare), so signals go before any message does.
   */
  signal (room: Room<Connection>, frame: string, exclude: string | null): void {
    if (this.congested) {
      this.#stats.drop('signal_shed', null, room.name)
      return
    }
    this.#queue(room).add(frame, null, exclude, null, true)
    this.#scheduleFlush()
    this.#flushIfFull(room)
  }

  /** `conn` has just joined `room`: what the room has pending was sent before it was in. */
  joined (room: Room<Connection>, conn: Connection): void {
    room.batch?.joined(conn)
  }

  /**
   * `conn` was sent a `joined` of `room` that replayed up to `offset`. A
   * broker may still deliver messages up to there (with Redis, a history
   * read can see a message before pub/sub brings it here): those are not
   * written to `conn` again.
   */
  floor (room: Room<Connection>, conn: Connection, offset: number): void {
    // At or below what the room has queued, every later message is past it already.
    if (offset > room.latest) (room.floors ??= new Map()).set(conn, offset)
  }

  /** The room's history changed under it: what is pending goes out now, and offsets start over. */
  reset (room: Room<Connection>): void {
    this.flushMessages(room)
    room.latest = 0
    room.floors = null
  }

  /** Writes the room's batch now if it has messages, so what follows for one socket comes after them. */
  flushMessages (room: Room<Connection> | undefined): void {
    if (room?.batch != null && room.batch.messages > 0) this.#flushRoom(room)
  }

  /** Writes every pending batch now and stops the timers (presence too: it keeps its order with the messages). */
  readonly flush = (): void => {
    if (this.#flushing !== null) clearImmediate(this.#flushing)
    if (this.#flushSoon !== null) clearTimeout(this.#flushSoon)
    if (this.#presenceFlush !== null) clearTimeout(this.#presenceFlush)
    this.#flushing = null
    this.#flushSoon = null
    this.#presenceFlush = null
    this.#flushedAt = performance.now()
    const pending = this.#pending
    this.#pending = []
    for (const room of pending) this.#flushRoom(room)
  }

  /** The room's batch, made on first use; the caller schedules its flush. */
  #queue (room: Room<Connection>): Batch {
    if (room.batch !== null) return room.batch
    room.batch = new Batch()
    this.#pending.push(room)
    return room.batch
  }

  #scheduleFlush (): void {
    if (this.#flushing !== null || this.#flushSoon !== null) return
    const wait = this.#flushedAt + FLUSH_INTERVAL_MS - performance.now()
    // setImmediate runs after this iteration's I/O callbacks: every message
    // handled in this iteration is in the batch before it is written.
    if (wait <= 0) this.#flushing = setImmediate(this.flush)
    else this.#flushSoon = setTimeout(this.flush, wait)
  }

  #flushIfFull (room: Room<Connection>): void {
    if (room.batch !== null && room.batch.bytes >= MAX_BATCH_BYTES) this.#flushRoom(room)
  }

  /** Writes a room's batch: per member, one write of the batch's frames. */
  #flushRoom (room: Room<Connection>): void {
    const { batch, name } = room
    if (batch === null) return
    room.batch = null
    if (room.floors !== null) this.#applyFloors(room, batch)
    let reached = 0
    let behind = 0
    let deliveries = 0
    // Asked once per batch: when it holds, each member's count needs no check of its own.
    const uniform = batch.uniform
    for (const conn of room.members) {
      const held = conn.held(name)
      if (held !== undefined) {
        this.#holding.hold(conn, held, batch)
        continue
      }
      const result = conn.deliver(batch, name)
      if (result === Delivery.NOT_WRITTEN) continue
      reached++
      deliveries += uniform ? batch.messages : batch.messagesFor(conn)
      if (result === Delivery.BEHIND) behind++
    }
    this.#stats.deliveriesOut += deliveries
    // More than an eighth of the room falling behind is not a few slow
    // readers (those are dropped one by one) but more traffic than this
    // server can write: new messages are refused until it clears.
    if (batch.messages > 0 && reached >= 8 && behind * 8 > reached) this.#congestedAt = performance.now()
    if (room.floors !== null) room.floors = passed(room.floors, room.latest)
  }

  /** Hands the batch the floors that reach into it; those below its first message are done with. */
  #applyFloors (room: Room<Connection>, batch: Batch): void {
    const first = batch.entries.find((entry) => entry.message !== null)?.message
    if (first === undefined || first === null) return
    const floors = passed(room.floors as Map<Connection, number>, first.offset - 1)
    room.floors = floors
    if (floors !== null) batch.below(floors)
  }
}

/** `floors` without those at or below `offset` (the room has gone past them); null when none is left. */
function passed (floors: Map<Connection, number>, offset: number): Map<Connection, number> | null {
  for (const [conn, floor] of floors) if (floor <= offset) floors.delete(conn)
  return floors.size === 0 ? null : floors
}
