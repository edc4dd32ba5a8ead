import t from 'tap'
import { Rooms } from '../../lib/chat/rooms.js'

interface Socket { id: string }

/** A `subscribe` that records the rooms it was asked for. */
function subscriber (result: () => Promise<void> = async () => {}): { subscribe: (room: string) => Promise<void>, calls: string[] } {
  const calls: string[] = []
  return { calls, subscribe: async (room) => { calls.push(room); return await result() } }
}

t.test('the first member makes the room and subscribes; later members join it', async (t) => {
  const rooms = new Rooms<Socket>()
  const { subscribe, calls } = subscriber()
  const alice = { id: 'alice' }
  const bob = { id: 'bob' }
  t.equal(rooms.get('lobby'), undefined)

  const first = rooms.add(alice, 'lobby', subscribe)
  t.equal(first.firstOfUser, true)
  t.equal(first.room.name, 'lobby')
  t.equal(rooms.get('lobby'), first.room)
  t.strictSame(calls, ['lobby'])
  await t.resolves(first.room.ready, 'ready is the subscription')

  const second = rooms.add(bob, 'lobby', subscribe)
  t.equal(second.room, first.room, 'the same room')
  t.equal(second.firstOfUser, true)
  t.strictSame(calls, ['lobby'], 'subscribed once')
  t.strictSame([...first.room.members], [alice, bob])
  t.strictSame([...first.room.users], [['alice', 1], ['bob', 1]])
  t.equal(first.room.batch, null, 'nothing to send yet')
  t.strictSame([first.room.latest, first.room.floors], [0, null], 'nothing delivered, nobody with a floor')
})

t.test('a member that leaves takes its floor with it', async (t) => {
  const rooms = new Rooms<Socket>()
  const { subscribe } = subscriber()
  const alice = { id: 'alice' }
  const bob = { id: 'bob' }
  const { room } = rooms.add(alice, 'r', subscribe)
  rooms.add(bob, 'r', subscribe)
  room.floors = new Map([[alice, 5], [bob, 7]])
  rooms.remove(alice, 'r')
  t.strictSame([...(room.floors ?? [])], [[bob, 7]])
  rooms.remove(bob, 'r')
  t.equal(room.floors, null, 'none left: back to null, which costs delivery nothing')
})

t.test('a user with two sockets is one user: first and last of user', async (t) => {
  const rooms = new Rooms<Socket>()
  const { subscribe } = subscriber()
  const tab1 = { id: 'alice' }
  const tab2 = { id: 'alice' }
  const bob = { id: 'bob' }
  t.equal(rooms.add(tab1, 'r', subscribe).firstOfUser, true)
  t.equal(rooms.add(tab2, 'r', subscribe).firstOfUser, false, 'her second tab')
  rooms.add(bob, 'r', subscribe)
  t.equal(rooms.get('r')?.users.get('alice'), 2)

  t.strictSame(rooms.remove(tab1, 'r'), { lastOfUser: false, emptied: false }, 'her other tab is still in')
  t.equal(rooms.get('r')?.users.get('alice'), 1)
  t.strictSame(rooms.remove(tab2, 'r'), { lastOfUser: true, emptied: false })
  t.notOk(rooms.get('r')?.users.has('alice'), 'a user with no socket left is not counted')
  t.strictSame(rooms.remove(bob, 'r'), { lastOfUser: true, emptied: true })
})

t.test('an emptied room is forgotten, and made (and subscribed) again on the next join', async (t) => {
  const rooms = new Rooms<Socket>()
  const { subscribe, calls } = subscriber()
  const alice = { id: 'alice' }
  const before = rooms.add(alice, 'r', subscribe).room
  rooms.add(alice, 'other', subscribe)
  rooms.remove(alice, 'r')
  t.equal(rooms.get('r'), undefined)
  t.strictSame(rooms.names(), ['other'])
  const after = rooms.add(alice, 'r', subscribe).room
  t.not(after, before, 'a new room')
  t.strictSame(calls, ['r', 'other', 'r'])
  t.strictSame(rooms.names(), ['other', 'r'])
})

t.test('removing a socket that is not in the room changes nothing', async (t) => {
  const rooms = new Rooms<Socket>()
  const { subscribe } = subscriber()
  const alice = { id: 'alice' }
  const impostor = { id: 'alice' }
  t.equal(rooms.remove(alice, 'nowhere'), null, 'no such room')
  rooms.add(alice, 'r', subscribe)
  t.equal(rooms.remove(impostor, 'r'), null, 'membership is per socket, not per user id')
  t.equal(rooms.get('r')?.users.get('alice'), 1, 'her count is untouched')
  t.strictSame(rooms.remove(alice, 'r'), { lastOfUser: true, emptied: true })
  t.equal(rooms.remove(alice, 'r'), null, 'removing twice')
})

t.test('names lists the rooms with members, in the order they were made', async (t) => {
  const rooms = new Rooms<Socket>()
  const { subscribe } = subscriber()
  t.strictSame(rooms.names(), [])
  for (const name of ['b', 'a', 'c']) rooms.add({ id: 'u' }, name, subscribe)
  t.strictSame(rooms.names(), ['b', 'a', 'c'])
})

t.test('a failed subscription rejects ready, and is not an unhandled rejection', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  const rooms = new Rooms<Socket>()
  const { subscribe } = subscriber(async () => { throw new Error('broker down') })
  const { room } = rooms.add({ id: 'alice' }, 'r', subscribe)
  // Unhandled rejections are reported once the microtasks have run.
  await new Promise((resolve) => setImmediate(resolve))
  t.strictSame(unhandled, [])
  await t.rejects(room.ready, { message: 'broker down' }, 'a join awaiting it still sees the failure')
})
