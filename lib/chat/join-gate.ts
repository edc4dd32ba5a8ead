/**
 * Lets at most `limit` joins run at once; the others wait their turn, first
 * come first served, and none is refused. A reconnect storm would otherwise
 * start every join (its `authorize`, history read and presence announcement)
 * at the same time, and each would wait behind all the others.
 *
 * The waiting list needs no cap of its own: a socket hands a join over from
 * its frame queue, which is capped and stops reading when full, so at most
 * the sockets open (`maxConnections`) times their queue can be waiting.
 */
export class JoinGate {
  readonly #limit: number
  #running = 0
  // FIFO: a queue read from `#head`, compacted once half of it is spent, so
  // taking a turn costs O(1) however long the line is.
  #waiting: Array<() => void> = []
  #head = 0

  constructor (limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`a join gate needs a positive integer limit, got ${String(limit)}`)
    this.#limit = limit
  }

  /** Joins running now. */
  get running (): number {
    return this.#running
  }

  /** Joins waiting for a turn. */
  get waiting (): number {
    return this.#waiting.length - this.#head
  }

  /** Runs `task` once fewer than `limit` others run, after every task that came before it; a failure is the caller's. */
  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit || this.waiting > 0) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve))
    } else {
      this.#running++
    }
    try {
      return await task()
    } finally {
      this.#next()
    }
  }

  // The finished task's turn goes straight to the oldest waiter, so `running` never dips and a newcomer cannot jump the line.
  #next (): void {
    if (this.waiting === 0) {
      this.#running--
      return
    }
    const wake = this.#waiting[this.#head++] as () => void
    if (this.#head * 2 >= this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head)
      this.#head = 0
    }
    wake()
  }
}
