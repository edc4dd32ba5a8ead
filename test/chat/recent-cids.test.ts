import t from 'tap'
import { RecentCids } from '../../lib/chat/recent-cids.js'
import type { ChatMessage } from '../../lib/protocol/wire.js'

const message = (offset: number): ChatMessage => ({ room: 'r', offset, ts: 0, from: { id: 'a', name: 'a' }, text: 't' })

t.test('remembers cids per room, pending then stored', async (t) => {
  const cids = new RecentCids()
  t.equal(cids.get('r', 'c1'), undefined)
  cids.set('r', 'c1', 'pending')
  t.equal(cids.get('r', 'c1'), 'pending')
  t.equal(cids.get('other', 'c1'), undefined, 'rooms are separate')
  cids.set('r', 'c1', message(1))
  t.same(cids.get('r', 'c1'), message(1))
  cids.delete('r', 'c1')
  t.equal(cids.get('r', 'c1'), undefined)
})

t.test('forgets the oldest cids of a room and the least recently written rooms', async (t) => {
  const cids = new RecentCids(2, 2)
  cids.set('r', 'a', 'pending')
  cids.set('r', 'b', 'pending')
  cids.set('r', 'c', 'pending')
  t.equal(cids.get('r', 'a'), undefined, 'oldest cid forgotten')
  t.equal(cids.get('r', 'c'), 'pending')
  cids.set('s', 'x', 'pending')
  cids.set('r', 'd', 'pending')
  cids.set('u', 'y', 'pending')
  t.equal(cids.get('s', 'x'), undefined, 'room s was written least recently')
  t.equal(cids.get('r', 'd'), 'pending')
  cids.clear()
  t.equal(cids.get('r', 'd'), undefined)
})
