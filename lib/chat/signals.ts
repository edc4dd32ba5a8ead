import type { Broker } from '../broker/broker.js'
import type { Stats } from '../stats.js'
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

/** Signals of this server on their way through the broker at once; more are dropped. */
export const MAX_SIGNALS_IN_FLIGHT = 1024

/** Where a room's signals are written: the fan-out, beside the room's messages. */
export interface SignalSink {
  signal (room: Room<Connection>, frame: string, exclude: string | null): void
}

/**
 * A signal's way from its sender to its room's other members on every
 * server: through the broker when it carries signals, else straight to the
 * members here. Each server's members get it with the room's next write
 * (see Fanout.signal): a typist in a busy room costs its members no write of
 * its own.
 */
export class SignalRelay {
  readonly #broker: Broker
  readonly #stats: Stats
  readonly #rooms: Rooms<Connection>
  readonly #sink: SignalSink
  #inFlight = 0
  #closed = false

  constructor (broker: Broker, stats: Stats, rooms: Rooms<Connection>, sink: SignalSink) {
    this.#broker = broker
    this.#stats = stats
    this.#rooms = rooms
    this.#sink = sink
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
    this.#sink.signal(room, JSON.stringify(frame), exclude)
  }

  /** Later signals go nowhere. */
  close (): void {
    this.#closed = true
  }
}
