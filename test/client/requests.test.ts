import t from 'tap'
import { codedError, randomCid, Requests } from '../../lib/client/requests.js'
import { withFakeClock } from '../helpers/fake-clock.js'

t.test('cids are 24 hex digits, fresh each time', async (t) => {
  const cids = new Set(Array.from({ length: 50 }, () => randomCid()))
  t.equal(cids.size, 50)
  for (const cid of cids) t.match(cid, /^[0-9a-f]{24}$/)
})

t.test('a coded error carries its code', async (t) => {
  t.match(codedError('closed', 'gone'), { code: 'closed', message: 'gone' })
  t.ok(codedError('x', 'y') instanceof Error)
})

t.test('an answer settles the request of its cid, once; others are not touched', async (t) => {
  const requests = new Requests<string>()
  const a = requests.wait('a', 1000, () => new Error('timeout'))
  const b = requests.wait('b', 1000, () => new Error('timeout'))
  t.equal(requests.size, 2)
  t.equal(requests.answer('a', 'page a'), true)
  t.equal(requests.answer('a', 'again'), false, 'answered already')
  t.equal(requests.answer('nobody', 'x'), false)
  t.equal(requests.answer(undefined, 'x'), false, 'a frame without a cid answers nothing')
  t.equal(await a, 'page a')
  t.equal(requests.answer('b', codedError('forbidden', 'no')), true)
  await t.rejects(b, { code: 'forbidden' })
  t.equal(requests.size, 0)
})

t.test('a request not answered in time rejects, and a late answer finds nothing', async (t) => {
  await withFakeClock(async (clock) => {
    const requests = new Requests<string>()
    const waiting = requests.wait('a', 100, () => codedError('timeout', 'too slow'))
    const outcome = waiting.then(() => 'resolved', (err: Error & { code: string }) => err.code)
    clock.tick(99)
    t.equal(requests.size, 1)
    clock.tick(1)
    t.equal(await outcome, 'timeout')
    t.equal(requests.answer('a', 'late'), false)
  })
})

t.test('failAll rejects every waiting request and clears their timers', async (t) => {
  const requests = new Requests<string>()
  const waiting = ['a', 'b'].map(async (cid) => await requests.wait(cid, 60_000, () => new Error('timeout')))
  let made = 0
  requests.failAll(() => codedError('closed', `closed ${++made}`))
  const results = await Promise.allSettled(waiting)
  t.match(results, [{ status: 'rejected', reason: { code: 'closed', message: 'closed 1' } }, { status: 'rejected', reason: { code: 'closed', message: 'closed 2' } }])
  t.equal(requests.size, 0)
  t.notOk(process.getActiveResourcesInfo().includes('Timeout'), 'no timer left behind')
})
