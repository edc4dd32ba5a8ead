import t from 'tap'
import { Directs } from '../../lib/client/directs.js'

const bob = { id: 'u-bob', name: 'bob' }
const carol = { id: 'u-carol', name: 'carol' }

t.test('an ask is answered by a joined with the user, which makes the room direct', async (t) => {
  const directs = new Directs()
  directs.ask(bob.id, 'cid-1')
  t.equal(directs.askOf(bob.id), 'cid-1')
  t.equal(directs.askedBy('cid-1'), bob.id)
  t.equal(directs.askedBy('cid-2'), undefined)
  t.equal(directs.askedBy(undefined), undefined)
  t.same(directs.rejoins(), { rooms: [], asks: [[bob.id, 'cid-1']] })

  directs.joined('dm-1', bob)
  t.equal(directs.askOf(bob.id), undefined, 'answered')
  t.ok(directs.has('dm-1'))
  t.same(directs.get('dm-1'), bob)
  t.equal(directs.roomOf(bob.id), 'dm-1')
  t.equal(directs.roomOf(carol.id), undefined)
  t.same(directs.rejoins(), { rooms: [['dm-1', bob]], asks: [] })
})

t.test('rooms is a copy', async (t) => {
  const directs = new Directs()
  directs.joined('dm-1', bob)
  const rooms = directs.rooms
  rooms.delete('dm-1')
  t.same([...directs.rooms], [['dm-1', bob]])
})

t.test('an ask for a user whose room is known rejoins only by the room', async (t) => {
  const directs = new Directs()
  directs.joined('dm-1', bob)
  directs.ask(bob.id, 'cid-2')
  directs.ask(carol.id, 'cid-3')
  t.same(directs.rejoins(), { rooms: [['dm-1', bob]], asks: [[carol.id, 'cid-3']] })
})

t.test('dropping an ask and deleting a room', async (t) => {
  const directs = new Directs()
  directs.ask(carol.id, 'cid-3')
  directs.dropAsk(carol.id)
  t.equal(directs.askedBy('cid-3'), undefined)
  directs.joined('dm-1', bob)
  t.equal(directs.delete('dm-1'), true)
  t.equal(directs.delete('dm-1'), false)
  t.same(directs.rejoins(), { rooms: [], asks: [] })
})
