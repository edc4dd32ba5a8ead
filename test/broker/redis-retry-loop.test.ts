// The loop that catches rooms up after a Redis reconnect: retries with a
// capped, doubling wait, runs again at once when kicked, and stops on close.
import t from 'tap'
import { RetryLoop } from '../../lib/broker/redis/retry-loop.js'
import { within } from '../helpers/chat.js'

t.test('a failing attempt is tried again, each wait twice the last, up to the cap, until it is done', async (t) => {
  const starts: number[] = []
  const outcomes: Array<boolean | Error> = [new Error('one'), false, new Error('two'), false, true]
  const failures: unknown[] = []
  const loop = new RetryLoop(async () => {
    starts.push(performance.now())
    const outcome = outcomes[starts.length - 1]
    if (outcome instanceof Error) throw outcome
    return outcome ?? true
  }, (err) => failures.push(err), { firstMs: 20, maxMs: 60 })
  t.teardown(() => loop.close())
  await within(loop.kick(), 5000, 'the loop to finish')
  t.equal(starts.length, 5, 'tried until it reported done')
  t.strictSame(failures.map((err) => (err as Error).message), ['one', 'two'], 'each failure reported')
  const waits = starts.slice(1).map((start, i) => start - (starts[i] as number))
  // Timers never fire early by more than a millisecond's rounding.
  for (const [i, least] of [20, 40, 60, 60].entries()) t.ok((waits[i] as number) >= least - 1, `wait ${i + 1}: ${Math.round(waits[i] as number)} ms >= ${least} ms`)
})

/** Lets every promise already settled run on: an attempt the loop starts now has begun after it. */
async function settle (): Promise<void> {
  await within(new Promise<void>((resolve) => setImmediate(resolve)))
}

t.test('a kick during a wait runs an attempt at once, and settles only after an attempt begun after it', async (t) => {
  let attempts = 0
  let release: (done: boolean) => void = () => {}
  const loop = new RetryLoop(async () => {
    attempts++
    return await new Promise<boolean>((resolve) => { release = resolve })
  }, () => {}, { firstMs: 60_000, maxMs: 60_000 })
  t.teardown(() => loop.close())
  let settled = 0
  const kicks = [loop.kick().then(() => settled++)]
  t.equal(attempts, 1, 'the first attempt starts at once')
  // Not done: the loop would now wait a minute.
  release(false)
  await settle()
  kicks.push(loop.kick().then(() => settled++))
  await settle()
  t.equal(attempts, 2, 'a kick cuts the wait short')
  // A kick while an attempt runs: that attempt's success does not count for it.
  kicks.push(loop.kick().then(() => settled++))
  release(true)
  await settle()
  t.equal(attempts, 3, 'run again for the kick that came during the attempt')
  t.equal(settled, 0, 'nobody is told it is done yet')
  release(true)
  await within(Promise.all(kicks), 2000, 'every kick to settle')
  t.equal(attempts, 3)
  t.equal(settled, 3)
})

t.test('close stops the loop: a pending kick settles and no attempt follows', async (t) => {
  let attempts = 0
  const loop = new RetryLoop(async () => {
    attempts++
    return false
  }, () => {}, { firstMs: 60_000, maxMs: 60_000 })
  const kicked = loop.kick()
  await settle()
  loop.close()
  await within(kicked, 2000, 'the kick to settle on close')
  t.equal(attempts, 1)
  await loop.kick()
  t.equal(attempts, 1, 'a kick after close does nothing')
})
