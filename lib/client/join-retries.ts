import type { Backoff } from './backoff.js'

/**
 * Joins the server answered `unavailable` (its Redis away, say), asked again
 * on the same socket after a backoff of their own: per room, the retries so
 * far and the pending timer.
 */
export class JoinRetries {
  #backoff: Backoff
  #rooms = new Map<string, { attempt: number, timer: ReturnType<typeof setTimeout> }>()

  constructor (backoff: Backoff) {
    this.#backoff = backoff
  }

  /** Calls `retry` after the room's next backoff delay, in place of any retry still pending. */
  schedule (room: string, retry: () => void): void {
    const pending = this.#rooms.get(room)
    clearTimeout(pending?.timer)
    const attempt = pending?.attempt ?? 0
    const timer = setTimeout(retry, this.#backoff.delay(attempt))
    this.#rooms.set(room, { attempt: attempt + 1, timer })
  }

  /** Cancels the retries of `room`, or of every room; the next schedule starts from the first delay. */
  stop (room?: string): void {
    for (const [name, pending] of this.#rooms) {
      if (room !== undefined && name !== room) continue
      clearTimeout(pending.timer)
      this.#rooms.delete(name)
    }
  }

  get size (): number { return this.#rooms.size }
}
