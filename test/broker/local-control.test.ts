import t from 'tap'
import type { Control } from '../../lib/broker/control.js'
import { LocalControl } from '../../lib/broker/local-control.js'

t.test('a pair is the opener with their name and the other by id, until they pair themselves', async (t) => {
  const control = new LocalControl()
  t.equal(await control.pairOf('dm-1'), null, 'never opened')
  await control.pair('dm-1', { id: 'alice', name: 'Alice' }, 'bob')
  t.strictSame(await control.pairOf('dm-1'), [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'bob' }])
  await control.pair('dm-1', { id: 'bob', name: 'Bob' }, 'alice')
  t.strictSame(await control.pairOf('dm-1'), [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }], 'bob\'s name now; alice\'s kept')
  await control.pair('dm-1', { id: 'alice', name: 'Ally' }, 'bob')
  t.strictSame(await control.pairOf('dm-1'), [{ id: 'alice', name: 'Ally' }, { id: 'bob', name: 'Bob' }], 'a rename shows on the next open')
})

t.test('send has no other server to reach, and resolves', async (t) => {
  const control: Control = new LocalControl()
  await control.send({ type: 'disconnect', userId: 'alice', reason: 'bye' })
  t.pass('resolved')
})

t.test('past the cap the least recently opened pair is forgotten', async (t) => {
  const control = new LocalControl(2)
  await control.pair('dm-1', { id: 'a', name: 'A' }, 'b')
  await control.pair('dm-2', { id: 'c', name: 'C' }, 'd')
  await control.pair('dm-1', { id: 'b', name: 'B' }, 'a')
  await control.pair('dm-3', { id: 'e', name: 'E' }, 'f')
  t.equal(await control.pairOf('dm-2'), null, 'the oldest went')
  t.ok(await control.pairOf('dm-1'), 'opened again since: kept')
  t.ok(await control.pairOf('dm-3'))
})

t.test('close forgets every pair', async (t) => {
  const control = new LocalControl()
  await control.pair('dm-1', { id: 'a', name: 'A' }, 'b')
  control.close()
  t.equal(await control.pairOf('dm-1'), null)
})
