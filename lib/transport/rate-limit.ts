/** Token bucket settings: `messages` tokens refill every `intervalMs`, up to `burst`. */
export interface RateLimit {
  /** Frames allowed per interval, on average. @default 10 */
  messages: number
  /** Refill period. @default 1000 */
  intervalMs: number
  /** Frames allowed at once after a quiet spell. @default 20 */
  burst: number
}

/**
 * One connection's token bucket. Refills lazily from the clock on each take,
 * so idle connections cost no timers.
 */
export class TokenBucket {
  #limit: RateLimit
  #tokens: number
  #last: number
  /** Frames refused since the last accepted one. */
  strikes = 0

  constructor (limit: RateLimit, now = performance.now()) {
    this.#limit = limit
    this.#tokens = limit.burst
    this.#last = now
  }

  /** Takes a token; `false` when the bucket is empty. */
  take (now = performance.now()): boolean {
    const { messages, intervalMs, burst } = this.#limit
    this.#tokens = Math.min(burst, this.#tokens + (now - this.#last) * messages / intervalMs)
    this.#last = now
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      this.strikes = 0
      return true
    }
    this.strikes++
    return false
  }
}
