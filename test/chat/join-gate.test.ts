import t from 'tap'
import { JoinGate } from '../../lib/chat/join-gate.js'

/** A task that runs until released, recording when it started. */
function held (started: number[], n: number): { task: () => Promise<number>, release: () => void } {
  let release = (): void => {}
  const done = new Promise<void>((resolve) => { release = resolve })
  return {
    task: async () => {
      started.push(n)
      await done
      return n
    },
    release
  }
}

t.test('runs at most limit tasks at once; the rest start in arrival order as slots free', async (t) => {
  const gate = new JoinGate(2)
  const started: number[] = []
  const tasks = Array.from({ length: 5 }, (_, n) => held(started, n))
  const results = tasks.map(({ task }) => gate.run(task))
  await Promise.resolve()
  t.same(started, [0, 1], 'two run')
  t.equal(gate.running, 2)
  t.equal(gate.waiting, 3)
  tasks[1]?.release()
  t.equal(await results[1], 1)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(started, [0, 1, 2], 'the oldest waiter took the freed slot')
  t.equal(gate.running, 2, 'the turn passed without the count dipping')
  for (const { release } of tasks) release()
  t.same(await Promise.all(results), [0, 1, 2, 3, 4], 'none is lost')
  t.same(started, [0, 1, 2, 3, 4])
  t.equal(gate.running, 0)
  t.equal(gate.waiting, 0)
})

t.test('a newcomer waits behind the line even when a slot is free for an instant', async (t) => {
  const gate = new JoinGate(1)
  const order: string[] = []
  const first = held([], 0)
  const a = gate.run(first.task)
  const b = gate.run(async () => { order.push('b') })
  first.release()
  await a
  // b was handed the slot when a ended; c, arriving now, goes after it.
  const c = gate.run(async () => { order.push('c') })
  await Promise.all([b, c])
  t.same(order, ['b', 'c'])
})

t.test('a failed task gives its slot back and its error to its caller', async (t) => {
  const gate = new JoinGate(1)
  const failing = gate.run(async () => { throw new Error('boom') })
  const next = gate.run(async () => 'ran')
  await t.rejects(failing, /boom/)
  t.equal(await next, 'ran')
  t.equal(gate.running, 0)
})

t.test('ten thousand waiting tasks all run, in arrival order, at most limit at once', async (t) => {
  const gate = new JoinGate(3)
  let active = 0
  let peak = 0
  const order: number[] = []
  const runs = Array.from({ length: 10_000 }, async (_, n) => await gate.run(async () => {
    active++
    peak = Math.max(peak, active)
    order.push(n)
    await Promise.resolve()
    active--
  }))
  await Promise.all(runs)
  t.equal(peak, 3)
  t.equal(order.length, 10_000)
  t.ok(order.every((n, i) => n === i), 'in arrival order')
})

t.test('the limit must be a positive integer', async (t) => {
  for (const bad of [0, -1, 1.5, Number.NaN]) t.throws(() => new JoinGate(bad), RangeError, String(bad))
})
