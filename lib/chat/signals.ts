import type { Broker } from '../broker/broker.js'
import type { Stats } from '../stats.js'
import { Batch } from './batch.js'
import type { Room, Rooms } from './rooms.js'
import type { SignalFrame } from '../protocol/wire.js'
import type { Connection } from '../transport/connection.js'
import { TokenBucket } from '../transport/rate-limit.js'
import type { RateLimit } from '../transport/rate-limit.js'

/**
 * Which signals a server accepts, and each socket's own limit on sending
 * them. A socket's bucket is made on its first signal and goes with the
 * socket (a WeakMap): sockets that never signal cost nothing here.
 */
export class SignalGate {
  readonly #names: ReadonlySet<string>
  readonly #rate: Readonly<RateLimit> | null
  readonly #buckets = new WeakMap<Connection, TokenBucket>()

  constructor (names: ReadonlySet<string>, rate: Readonly<RateLimit> | null) {
    this.#names = names
    this.#rate = rate
  }

  /** Whether `name` is one of the `signals` option. */
  accepts (name: string): boolean {
    return this.#names.has(name)
  }

  /**
   * Takes one of `conn`'s signal tokens; `false` when it has none left. A
   * signal over the limit is dropped without an answer: typing indicators
   * come with keystrokes, and an error frame for each would cost more than
   * the signal.
   */
  take (conn: Connection, now?: number): boolean {
    if (this.#rate === null) return true
    let bucket = this.#buckets.get(conn)
    if (bucket === undefined) this.#buckets.set(conn, bucket = new TokenBucket(this.#rate, now))
    return bucket.take(now)
  }
}

// A room's signals are written early once they are this much, like a batch of messages.
const MAX_SIGNAL_BATCH_BYTES = 64 * 1024

/**
 * Writes signals to the members of their rooms. The signals a room gets in
 * one event-loop iteration go out together, framed once, in one write per
 * member (many typists in a big room cost each member one write, not one
 * per signal), to every member but the sender's socket and members whose
 * join is still replaying (they have no `joined` of the room yet). Nothing
 * is queued past that: a member that is behind, and every member while the
 * server is congested, misses them, each miss counted as `signal_shed`, so
 * signals go before any message does.
 */
export class SignalFanout {
  readonly #stats: Stats
  readonly #congested: () => boolean
  #pending = new Map<Room<Connection>, Batch>()
  #flushing: NodeJS.Immediate | null = null

  constructor (stats: Stats, congested: () => boolean) {
    this.#stats = stats
    this.#congested = congested
  }

  /** Queues `frame` for `room`'s members, except the connection `exclude`. */
  add (room: Room<Connection>, frame: SignalFrame, exclude: string | null): void {
    let batch = this.#pending.get(room)
    if (batch === undefined) this.#pending.set(room, batch = new Batch())
    batch.add(JSON.stringify(frame), null, exclude, null)
    if (batch.bytes >= MAX_SIGNAL_BATCH_BYTES) {
      this.#pending.delete(room)
      this.#write(room, batch)
    }
    this.#flushing ??= setImmediate(this.flush)
  }

  /** Writes what is pending now. */
  readonly flush = (): void => {
    if (this.#flushing !== null) clearImmediate(this.#flushing)
    this.#flushing = null
    const pending = this.#pending
    this.#pending = new Map()
    for (const [room, batch] of pending) this.#write(room, batch)
  }

  /** Drops what is pending and stops the timer. */
  close (): void {
    if (this.#flushing !== null) clearImmediate(this.#flushing)
    this.#flushing = null
    this.#pending.clear()
  }

  #write (room: Room<Connection>, batch: Batch): void {
    const congested = this.#congested()
    for (const conn of room.members) {
      if (conn.held(room.name) !== undefined || (batch.skips(conn) && batch.entriesFor(conn).length === 0)) continue
      if (!congested && conn.deliverEphemeral(batch)) continue
      this.#stats.drop('signal_shed', conn.request, room.name)
    }
  }
}

/** Signals of this server on their way through the broker at once; more are dropped. */
export const MAX_SIGNALS_IN_FLIGHT = 1024

/**
 * A signal's way from its sender to its room's other members on every
 * server: through the broker when it carries signals, else straight to the
 * members here, written by a {@link SignalFanout}.
 */
export class SignalRelay {
  readonly #broker: Broker
  readonly #stats: Stats
  readonly #rooms: Rooms<Connection>
  readonly #fanout: SignalFanout
  #inFlight = 0
  #closed = false

  constructor (broker: Broker, stats: Stats, rooms: Rooms<Connection>, congested: () => boolean) {
    this.#broker = broker
    this.#stats = stats
    this.#rooms = rooms
    this.#fanout = new SignalFanout(stats, congested)
  }

  /**
   * Sends `from`'s signal to the room's other members on every server. Not
   * awaited, so a slow broker holds up none of the sender's frames; past
   * MAX_SIGNALS_IN_FLIGHT on their way, new ones are dropped (counted as
   * `signal_shed`) rather than piling up behind a hung Redis.
   */
  send (from: Connection, frame: SignalFrame): void {
    if (this.#closed) return
    const broker = this.#broker
    if (broker.signal === undefined) {
      this.deliver(frame, from.key)
      return
    }
    if (this.#inFlight >= MAX_SIGNALS_IN_FLIGHT) {
      this.#stats.drop('signal_shed', from.request, frame.room)
      return
    }
    this.#inFlight++
    broker.signal(frame, from.key)
      .catch((err: unknown) => from.request.log.debug({ err, room: frame.room }, 'fastify-chat: a signal could not be sent'))
      .finally(() => { this.#inFlight-- })
  }

  /** Counts a signal dropped because its sender went over `signalRate`. */
  limited (conn: Connection, room: string): void {
    this.#stats.drop('signal_limited', conn.request, room)
  }

  /** A signal for the room's members here, from this server or through the broker; `exclude` is a connection key to skip. */
  deliver (frame: SignalFrame, exclude: string | null): void {
    const room = this.#rooms.get(frame.room)
    if (room === undefined || this.#closed) return
    this.#fanout.add(room, frame, exclude)
  }

  /** Drops what is pending; later signals go nowhere. */
  close (): void {
    this.#fanout.close()
    this.#closed = true
  }
}
