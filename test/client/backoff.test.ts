import t from 'tap'
import { Backoff } from '../../lib/client/backoff.js'

t.test('defaults to 250 ms doubling up to 10 s', async (t) => {
  const backoff = new Backoff()
  t.equal(backoff.initialMs, 250)
  t.equal(backoff.maxMs, 10_000)
  t.equal(new Backoff({ initialMs: 50 }).maxMs, 10_000, 'each default on its own')
  t.equal(new Backoff({ maxMs: 500 }).initialMs, 250)
})

t.test('full jitter: a random share of initialMs * 2^attempt, capped at maxMs', async (t) => {
  const backoff = new Backoff({ initialMs: 100, maxMs: 1000 })
  t.intercept(Math, 'random', { value: () => 0.5 })
  t.same([0, 1, 2, 3, 4, 10].map((attempt) => backoff.delay(attempt)), [50, 100, 200, 400, 500, 500])
  t.intercept(Math, 'random', { value: () => 0 })
  t.equal(backoff.delay(0), 0, 'even the first try may go at once: no fixed floor')
})

t.test('refuses delays that are not 0 < initialMs <= maxMs', async (t) => {
  for (const bad of [{ initialMs: 0, maxMs: 10 }, { initialMs: 10, maxMs: 5 }, { initialMs: Number.NaN, maxMs: 5 }, { initialMs: 5, maxMs: Number.NaN }]) {
    t.throws(() => new Backoff(bad), { name: 'TypeError', message: /0 < initialMs <= maxMs/ }, JSON.stringify(bad))
  }
  t.equal(new Backoff({ initialMs: 5, maxMs: 5 }).delay(3) <= 5, true)
})
