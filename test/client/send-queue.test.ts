import t from 'tap'
import { SendQueue } from '../../lib/client/send-queue.js'
import type { SendFrame } from '../../lib/protocol/wire.js'

const frame = (cid: string): SendFrame => ({ type: 'message', text: cid, cid })

t.test('holds messages up to max, then throws', async (t) => {
  const queue = new SendQueue(2)
  queue.hold(frame('a'))
  queue.hold(frame('b'))
  t.throws(() => queue.hold(frame('c')), { message: 'chat send queue is full (2 messages waiting for the connection)' })
  t.same(queue.drain(), { unclear: [], queued: [frame('a'), frame('b')] })
  t.same(queue.drain().queued, [], 'drained once')
  t.throws(() => new SendQueue(0).hold(frame('a')), { message: /queue is full/ })
})

t.test('defaults to 100 and refuses what is not an integer >= 0', async (t) => {
  t.equal(new SendQueue().max, 100)
  for (const bad of [-1, 1.5, Number.NaN]) t.throws(() => new SendQueue(bad), { name: 'TypeError', message: 'maxQueue must be an integer >= 0' })
})

t.test('sent messages stay unclear until settled; the oldest go past max', async (t) => {
  const queue = new SendQueue(2)
  for (const cid of ['a', 'b', 'c']) queue.sent(frame(cid))
  queue.settled(undefined)
  t.same(queue.drain().unclear.map((f) => f.cid), ['b', 'c'], 'a, the oldest, was dropped')
  queue.settled('b')
  queue.hold(frame('d'))
  t.same(queue.drain(), { unclear: [frame('c')], queued: [frame('d')] }, 'unclear ones go first, and stay until settled')
  queue.hold(frame('e'))
  queue.clear()
  t.same(queue.drain(), { unclear: [], queued: [] })
})
