/** How long a {@link RetryLoop} waits: `firstMs` after the first failed attempt, doubling after each, up to `maxMs`. */
export interface RetryDelays {
  firstMs: number
  maxMs: number
}

const DELAYS: RetryDelays = { firstMs: 50, maxMs: 2000 }

/**
 * Runs `attempt` until it reports done. A failure (or "not yet") is tried
 * again after a wait that doubles up to a cap, so a Redis that stays away is
 * neither hammered nor given up on; a {@link kick} runs it again at once,
 * from the shortest wait, since something changed (a connection came back).
 */
export class RetryLoop {
  readonly #attempt: () => Promise<boolean>
  readonly #failed: (err: unknown) => void
  readonly #delays: RetryDelays
  #running: Promise<void> | null = null
  #kicked = false
  #closed = false
  #wake: (() => void) | null = null
  #timer: NodeJS.Timeout | undefined

  /** `attempt` resolves `true` when nothing is left to do; `failed` hears why an attempt threw. */
  constructor (attempt: () => Promise<boolean>, failed: (err: unknown) => void, delays = DELAYS) {
    this.#attempt = attempt
    this.#failed = failed
    this.#delays = delays
  }

  /** Runs an attempt soon; settles once one that began after this call is done, or the loop is closed. */
  async kick (): Promise<void> {
    if (this.#closed) return
    this.#kicked = true
    this.#wake?.()
    this.#running ??= this.#run()
    await this.#running
  }

  async #run (): Promise<void> {
    const { firstMs, maxMs } = this.#delays
    let delay = firstMs
    try {
      while (!this.#closed) {
        this.#kicked = false
        let done = false
        try {
          done = await this.#attempt()
        } catch (err) {
          if (!this.#closed) this.#failed(err)
        }
        if (this.#kicked) {
          delay = firstMs
          continue
        }
        // Checked and left in one go: a kick from here on starts a new run.
        if (done) return
        await this.#sleep(delay)
        delay = this.#kicked ? firstMs : Math.min(delay * 2, maxMs)
      }
    } finally {
      this.#running = null
    }
  }

  async #sleep (ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#wake = resolve
      this.#timer = setTimeout(resolve, ms)
    })
    clearTimeout(this.#timer)
    this.#wake = null
  }

  /** Stops retrying; an attempt under way finishes on its own. */
  close (): void {
    this.#closed = true
    this.#wake?.()
  }
}
