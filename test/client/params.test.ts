import t from 'tap'
import { askParams } from '../../lib/client/params.js'
import type { Params } from '../../lib/client/params.js'
import { withFakeClock } from '../helpers/fake-clock.js'

/** Records what askParams calls. */
function outcome (): { dial: (params: Params) => void, fail: () => void, calls: unknown[] } {
  const calls: unknown[] = []
  return { dial: (params) => calls.push(params), fail: () => calls.push('fail'), calls }
}

t.test('plain params dial at once; a throwing params fails at once', async (t) => {
  const ok = outcome()
  askParams(() => ({ token: 't' }), 1000, ok.dial, ok.fail)
  t.same(ok.calls, [{ token: 't' }])
  const bad = outcome()
  const cancel = askParams(() => { throw new Error('no token') }, 1000, bad.dial, bad.fail)
  t.same(bad.calls, ['fail'])
  cancel()
  t.same(bad.calls, ['fail'])
})

t.test('a promise dials when it resolves, fails when it rejects', async (t) => {
  const ok = outcome()
  askParams(async () => ({ token: 'later' }), 1000, ok.dial, ok.fail)
  t.same(ok.calls, [], 'not yet')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(ok.calls, [{ token: 'later' }])
  const bad = outcome()
  askParams(async () => { throw new Error('no') }, 1000, bad.dial, bad.fail)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(bad.calls, ['fail'])
  t.notOk(process.getActiveResourcesInfo().includes('Timeout'), 'the wait\'s timer is gone')
})

t.test('a promise that takes too long fails once; what it resolves to later is dropped', async (t) => {
  let settle = (_params: Params): void => {}
  const late = outcome()
  await withFakeClock(async (clock) => {
    askParams(async () => await new Promise<Params>((resolve) => { settle = resolve }), 100, late.dial, late.fail)
    clock.tick(99)
    t.same(late.calls, [])
    clock.tick(1)
    t.same(late.calls, ['fail'])
  })
  settle({ token: 'too late' })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(late.calls, ['fail'])
})

t.test('cancelling drops the wait: neither dial nor fail', async (t) => {
  let settle = (_params: Params): void => {}
  const cancelled = outcome()
  const cancel = askParams(async () => await new Promise<Params>((resolve) => { settle = resolve }), 60_000, cancelled.dial, cancelled.fail)
  cancel()
  t.notOk(process.getActiveResourcesInfo().includes('Timeout'), 'the wait\'s timer is gone')
  settle({ token: 'after cancel' })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(cancelled.calls, [])
})
