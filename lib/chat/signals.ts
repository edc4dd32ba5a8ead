import type { Stats } from '../stats.js'
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

/**
 * Writes a signal to the members of its room, encoded once, except the
 * socket `exclude` (its sender) and members whose join is still replaying
 * (they have no `joined` of the room yet). A signal is never queued: a
 * member that is behind, and every member while the server is `congested`,
 * is skipped and counted (`signal_shed`), so signals go before any message
 * does. Returns how many members it was written to.
 */
export function deliverSignal (members: Iterable<Connection>, frame: SignalFrame, exclude: string | null, congested: boolean, stats: Stats): number {
  const text = JSON.stringify(frame)
  let written = 0
  for (const conn of members) {
    if (conn.key === exclude || conn.held(frame.room) !== undefined) continue
    if (!congested && conn.sendEphemeral(text)) written++
    else stats.drop('signal_shed', conn.request, frame.room)
  }
  return written
}
