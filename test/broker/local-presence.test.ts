import t from 'tap'
import { LocalPresence } from '../../lib/broker/local-presence.js'
import type { PresenceEvent, PresenceNode } from '../../lib/broker/presence.js'

function recorder (): PresenceNode & { events: PresenceEvent[] } {
  const events: PresenceEvent[] = []
  return { events, presence: (event) => { events.push(event) } }
}

t.test('join adds the user to the room and announces it', async (t) => {
  const presence = new LocalPresence()
  const node = recorder()
  presence.start(node)
  const alice = { id: 'alice', name: 'Alice', extra: true }
  await presence.join('r', alice)
  await presence.join('r', { id: 'bob', name: 'Bob' })
  t.strictSame(node.events, [
    { room: 'r', event: 'join', user: { id: 'alice', name: 'Alice' } },
    { room: 'r', event: 'join', user: { id: 'bob', name: 'Bob' } }
  ], 'only id and name')
  t.strictSame(await presence.list('r'), [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }])
  t.strictSame(await presence.list('other'), [], 'rooms are apart')
  alice.name = 'changed'
  t.equal((await presence.list('r'))[0].name, 'Alice', 'a copy is kept, not the caller\'s object')
})

t.test('users handed out are frozen: nobody can change what every join reads', async (t) => {
  const presence = new LocalPresence()
  const node = recorder()
  presence.start(node)
  await presence.join('r', { id: 'alice', name: 'Alice' })
  const [listed] = await presence.list('r')
  t.ok(Object.isFrozen(listed))
  t.ok(Object.isFrozen(node.events[0].user))
  t.throws(() => { (listed as { name: string }).name = 'x' }, TypeError)
  const list = await presence.list('r')
  list.pop()
  t.equal((await presence.list('r')).length, 1, 'the list is a new array each time')
})

t.test('a user joining twice is listed once', async (t) => {
  const presence = new LocalPresence()
  await presence.join('r', { id: 'alice', name: 'Alice' })
  await presence.join('r', { id: 'alice', name: 'Alice' })
  t.strictSame(await presence.list('r'), [{ id: 'alice', name: 'Alice' }])
})

t.test('leave takes the user out and announces it, once', async (t) => {
  const presence = new LocalPresence()
  const node = recorder()
  presence.start(node)
  await presence.join('r', { id: 'alice', name: 'Alice' })
  await presence.join('r', { id: 'bob', name: 'Bob' })
  await presence.leave('r', { id: 'alice', name: 'Alice' })
  t.strictSame(await presence.list('r'), [{ id: 'bob', name: 'Bob' }])
  t.strictSame(node.events.at(-1), { room: 'r', event: 'leave', user: { id: 'alice', name: 'Alice' } })
  const events = node.events.length
  await presence.leave('r', { id: 'alice', name: 'Alice' })
  await presence.leave('nowhere', { id: 'alice', name: 'Alice' })
  t.equal(node.events.length, events, 'leaving where one is not is not announced')
  await presence.leave('r', { id: 'bob', name: 'Bob' })
  t.strictSame(await presence.list('r'), [], 'the last one out empties the room')
})

t.test('rename updates the listed name and announces it with the previous one', async (t) => {
  const presence = new LocalPresence()
  const node = recorder()
  presence.start(node)
  await presence.join('r', { id: 'alice', name: 'Alice' })
  await presence.rename('r', { id: 'alice', name: 'Ally' }, 'Alice')
  t.strictSame(await presence.list('r'), [{ id: 'alice', name: 'Ally' }])
  t.strictSame(node.events.at(-1), { room: 'r', event: 'rename', user: { id: 'alice', name: 'Ally' }, previous: 'Alice' })
  await presence.leave('r', { id: 'alice', name: 'Ally' })
  t.strictSame(node.events.at(-1)?.event, 'leave')
})

t.test('before start and after close nothing is announced; close forgets everyone', async (t) => {
  const presence = new LocalPresence()
  await presence.join('r', { id: 'alice', name: 'Alice' })
  const node = recorder()
  presence.start(node)
  await presence.join('r', { id: 'bob', name: 'Bob' })
  presence.close()
  t.strictSame(await presence.list('r'), [])
  await presence.join('r', { id: 'carol', name: 'Carol' })
  await presence.leave('r', { id: 'carol', name: 'Carol' })
  await presence.rename('r', { id: 'carol', name: 'C' }, 'Carol')
  t.strictSame(node.events.map((e) => `${e.event} ${e.user.id}`), ['join bob'])
})
