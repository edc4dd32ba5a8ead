/** 12 random bytes, hex; getRandomValues works on plain-http pages, unlike randomUUID. */
export function randomCid (): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(12))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** An error with the code a caller matches on. */
export function codedError (code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code })
}

interface Pending<T> {
  resolve: (answer: T) => void
  reject: (err: Error) => void
  timer: ReturnType<typeof setTimeout>
}

/** Requests waiting for the frame that answers them, matched by `cid`; each fails past its timeout. */
export class Requests<T> {
  #pending = new Map<string, Pending<T>>()

  /** Waits for the answer to `cid`; after `timeoutMs` it rejects with `timeout()`. */
  async wait (cid: string, timeoutMs: number, timeout: () => Error): Promise<T> {
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => this.answer(cid, timeout()), timeoutMs)
      this.#pending.set(cid, { resolve, reject, timer })
    })
  }

  /** Settles the request `cid`, if one waits; says whether one did. */
  answer (cid: string | undefined, answer: T | Error): boolean {
    const pending = cid === undefined ? undefined : this.#pending.get(cid)
    if (pending === undefined) return false
    this.#pending.delete(cid as string)
    clearTimeout(pending.timer)
    if (answer instanceof Error) pending.reject(answer)
    else pending.resolve(answer)
    return true
  }

  /** Fails every waiting request, each with its own `error()`. */
  failAll (error: () => Error): void {
    for (const cid of [...this.#pending.keys()]) this.answer(cid, error())
  }

  get size (): number { return this.#pending.size }
}
