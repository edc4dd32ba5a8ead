/** Delays before trying again: full jitter over `initialMs * 2^attempt`, capped at `maxMs`. */
export class Backoff {
  readonly initialMs: number
  readonly maxMs: number

  constructor (opts?: { initialMs?: number, maxMs?: number }) {
    const initialMs = opts?.initialMs ?? 250
    const maxMs = opts?.maxMs ?? 10_000
    if (!(initialMs > 0) || !(maxMs >= initialMs)) throw new TypeError('backoff needs 0 < initialMs <= maxMs')
    this.initialMs = initialMs
    this.maxMs = maxMs
  }

  /**
   * A random delay from 0 up to the ceiling of try `attempt` (0 for the
   * first). Jitter from the very first try: a server restart drops a whole
   * room at once, and any fixed first delay would bring it back all at once.
   */
  delay (attempt: number): number {
    return Math.random() * Math.min(this.maxMs, this.initialMs * 2 ** attempt)
  }
}
