// A fake clock for tests whose subject is timing. While it is installed,
// setTimeout, clearTimeout, setImmediate, clearImmediate and performance.now
// are the clock's: nothing scheduled runs and no time passes until the test
// says so. It is installed only for the length of one callback, which must
// not wait on real I/O or real timers (tap's own timers would be caught too).

/** Time and the event loop's turns, run by hand. */
export interface FakeClock {
  /** Milliseconds since the clock was installed; what performance.now() returns meanwhile. */
  readonly now: number
  /** One check phase: runs the immediates queued so far (those they queue wait for the next call). */
  immediate (): void
  /** Advances `ms`, running each timer that falls due on the way, at its time, in order. */
  tick (ms: number): void
}

interface Task {
  run: () => void
  due: number
  seq: number
}

// What Node does with a delay that is not at least 1 ms (or too large).
const TIMEOUT_MAX = 2 ** 31 - 1
function delayOf (ms: unknown): number {
  const n = Number(ms)
  return n >= 1 && n <= TIMEOUT_MAX ? n : 1
}

/** Runs `fn` with a fresh {@link FakeClock} installed, and restores the real timers after it, whatever happens. */
export async function withFakeClock<T> (fn: (clock: FakeClock) => T | Promise<T>): Promise<T> {
  const real = {
    setTimeout: globalThis.setTimeout,
    clearTimeout: globalThis.clearTimeout,
    setImmediate: globalThis.setImmediate,
    clearImmediate: globalThis.clearImmediate
  }
  let now = 0
  let seq = 0
  const timers = new Set<Task>()
  let immediates: Task[] = []

  const handle = (task: Task): object => ({ task, ref () { return this }, unref () { return this }, hasRef: () => true })
  const taskOf = (h: unknown): Task | undefined => (h as { task?: Task } | null | undefined)?.task

  globalThis.setTimeout = ((callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const task = { run: () => callback(...args), due: now + delayOf(ms), seq: seq++ }
    timers.add(task)
    return handle(task)
  }) as unknown as typeof setTimeout
  globalThis.clearTimeout = ((h: unknown) => {
    const task = taskOf(h)
    if (task !== undefined) timers.delete(task)
  }) as typeof clearTimeout
  globalThis.setImmediate = ((callback: (...args: unknown[]) => void, ...args: unknown[]) => {
    const task = { run: () => callback(...args), due: now, seq: seq++ }
    immediates.push(task)
    return handle(task)
  }) as unknown as typeof setImmediate
  globalThis.clearImmediate = ((h: unknown) => {
    const task = taskOf(h)
    if (task !== undefined) immediates = immediates.filter((queued) => queued !== task)
  }) as typeof clearImmediate
  performance.now = () => now

  const clock: FakeClock = {
    get now () { return now },
    immediate () {
      const due = immediates
      immediates = []
      for (const task of due) task.run()
    },
    tick (ms) {
      const until = now + ms
      for (;;) {
        let next: Task | undefined
        for (const task of timers) {
          if (task.due <= until && (next === undefined || task.due < next.due || (task.due === next.due && task.seq < next.seq))) next = task
        }
        if (next === undefined) break
        timers.delete(next)
        now = next.due
        next.run()
      }
      now = until
    }
  }

  try {
    return await fn(clock)
  } finally {
    Object.assign(globalThis, real)
    // The own property shadowed Performance.prototype.now.
    delete (performance as { now?: unknown }).now
  }
}
