import t from 'tap'
import { LocalPresence } from '../../lib/broker/local-presence.js'
import type { PresenceEvent, PresenceNode } from '../../lib/broker/presence.js'
import type { User } from '../../lib/protocol/wire.js'
import { everyone } from '../helpers/presence.js'

function recorder (): PresenceNode & { events: PresenceEvent[] } {
  const events: PresenceEvent[] = []
  return { events, presence: (event) => { events.push(event) } }
}

/** A LocalPresence started on a node that records its events. */
function started (): { presence: LocalPresence, node: ReturnType<typeof recorder> } {
  const presence = new LocalPresence()
  const node = recorder()
  presence.start(node)
  return { presence, node }
}

const user = (i: number): User => ({ id: `u${i}`, name: `User ${i}` })

t.test('join adds the user to the room and announces it with the count', async (t) => {
  const { presence, node } = started()
  const alice = { id: 'alice', name: 'Alice', extra: true }
  await presence.join('r', alice)
  await presence.join('r', { id: 'bob', name: 'Bob' })
  t.strictSame(node.events, [
    { room: 'r', event: 'join', user: { id: 'alice', name: 'Alice' }, count: 1 },
    { room: 'r', event: 'join', user: { id: 'bob', name: 'Bob' }, count: 2 }
  ], 'only id and name')
  t.strictSame(await presence.page('r', { limit: 10 }), { users: [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }], count: 2 })
  t.strictSame(await presence.page('other', { limit: 10 }), { users: [], count: 0 }, 'rooms are apart')
  t.equal(await presence.count('r'), 2)
  t.equal(await presence.count('other'), 0)
  alice.name = 'changed'
  t.equal((await presence.page('r', { limit: 1 })).users[0].name, 'Alice', 'a copy is kept, not the caller\'s object')
})

t.test('users handed out are frozen: nobody can change what every join reads', async (t) => {
  const { presence, node } = started()
  await presence.join('r', { id: 'alice', name: 'Alice' })
  const [listed] = (await presence.page('r', { limit: 5 })).users
  t.ok(Object.isFrozen(listed))
  t.ok(Object.isFrozen(node.events[0].user))
  t.throws(() => { (listed as { name: string }).name = 'x' }, TypeError)
  const { users } = await presence.page('r', { limit: 5 })
  t.ok(Object.isFrozen(users), 'and so is the list')
  t.throws(() => users.pop(), TypeError)
  t.equal((await presence.page('r', { limit: 5 })).users.length, 1)
})

t.test('the first page is handed out again while it holds, and made anew once it could have changed', async (t) => {
  const presence = new LocalPresence()
  presence.start(recorder())
  const ids = ['a', 'b', 'c', 'd']
  for (const id of ids.slice(0, 3)) await presence.join('r', { id, name: id })
  const first = await presence.page('r', { limit: 2 })
  t.strictSame(first.users.map((u) => u.id), ['a', 'b'])
  await presence.join('r', { id: 'd', name: 'd' })
  const again = await presence.page('r', { limit: 2 })
  t.equal(again.users, first.users, 'a join behind the page keeps the same list')
  t.equal(again.count, 4, 'with the count of now')
  t.not((await presence.page('r', { limit: 3 })).users, first.users, 'another limit is another page')
  t.strictSame((await presence.page('r', { limit: 2 })).users.map((u) => u.id), ['a', 'b'])

  await presence.rename('r', { id: 'b', name: 'B' }, 'b')
  const renamed = await presence.page('r', { limit: 2 })
  t.strictSame(renamed.users, [{ id: 'a', name: 'a' }, { id: 'b', name: 'B' }], 'a listed user renamed: the new name')

  await presence.leave('r', { id: 'c', name: 'c' })
  await presence.leave('r', { id: 'd', name: 'd' })
  const rest = await presence.page('r', { limit: 2 })
  t.equal(rest.next, undefined, 'nobody left behind the page: no next')
  t.equal(rest.count, 2)

  await presence.join('r', { id: 'e', name: 'e' })
  t.type((await presence.page('r', { limit: 2 })).next, 'string', 'someone behind it again: a next')
  await presence.leave('r', { id: 'a', name: 'a' })
  t.strictSame((await presence.page('r', { limit: 2 })).users.map((u) => u.id), ['b', 'e'], 'a listed user left')
  await presence.join('r', { id: 'b', name: 'bee' })
  t.strictSame((await presence.page('r', { limit: 2 })).users.map((u) => u.name), ['bee', 'e'], 'a listed user joined again with a new name')
})

t.test('a user joining twice is listed once, in their first place, with the later name', async (t) => {
  const { presence, node } = started()
  await presence.join('r', { id: 'alice', name: 'Alice' })
  await presence.join('r', { id: 'bob', name: 'Bob' })
  await presence.join('r', { id: 'alice', name: 'Ally' })
  t.strictSame((await presence.page('r', { limit: 5 })).users, [{ id: 'alice', name: 'Ally' }, { id: 'bob', name: 'Bob' }])
  t.equal(node.events.at(-1)?.count, 2)
})

t.test('leave takes the user out and announces it with the count, once', async (t) => {
  const { presence, node } = started()
  await presence.join('r', { id: 'alice', name: 'Alice' })
  await presence.join('r', { id: 'bob', name: 'Bob' })
  await presence.leave('r', { id: 'alice', name: 'Alice' })
  t.strictSame(await presence.page('r', { limit: 5 }), { users: [{ id: 'bob', name: 'Bob' }], count: 1 })
  t.strictSame(node.events.at(-1), { room: 'r', event: 'leave', user: { id: 'alice', name: 'Alice' }, count: 1 })
  const events = node.events.length
  await presence.leave('r', { id: 'alice', name: 'Alice' })
  await presence.leave('nowhere', { id: 'alice', name: 'Alice' })
  t.equal(node.events.length, events, 'leaving where one is not is not announced')
  await presence.leave('r', { id: 'bob', name: 'Bob' })
  t.strictSame(node.events.at(-1)?.count, 0)
  t.strictSame(await presence.page('r', { limit: 5 }), { users: [], count: 0 }, 'the last one out empties the room')
})

t.test('rename updates the listed name and announces it with the previous one', async (t) => {
  const { presence, node } = started()
  await presence.join('r', { id: 'alice', name: 'Alice' })
  await presence.rename('r', { id: 'alice', name: 'Ally' }, 'Alice')
  t.strictSame((await presence.page('r', { limit: 5 })).users, [{ id: 'alice', name: 'Ally' }])
  t.strictSame(node.events.at(-1), { room: 'r', event: 'rename', user: { id: 'alice', name: 'Ally' }, previous: 'Alice', count: 1 })
  await presence.rename('nowhere', { id: 'alice', name: 'A' }, 'Ally')
  t.equal(await presence.count('nowhere'), 0, 'a rename adds nobody')
  t.equal(node.events.at(-1)?.count, 0)
  await presence.leave('r', { id: 'alice', name: 'Ally' })
  t.strictSame(node.events.at(-1)?.event, 'leave')
})

t.test('paging lists every user once, in join order, with a next on every page but the last', async (t) => {
  const presence = new LocalPresence()
  for (let i = 0; i < 25; i++) await presence.join('r', user(i))
  const first = await presence.page('r', { limit: 10 })
  t.equal(first.users.length, 10)
  t.equal(first.count, 25)
  t.type(first.next, 'string')
  const { users, pages } = await everyone(presence, 'r', 10)
  t.strictSame(users.map((u) => u.id), Array.from({ length: 25 }, (_, i) => `u${i}`))
  t.equal(pages, 3)
  const exact = await everyone(presence, 'r', 25)
  t.equal(exact.pages, 1, 'a page that takes the last user has no next')
  t.strictSame(await everyone(presence, 'r', 5).then((r) => r.pages), 5, 'nor when the last page is exactly full')
})

t.test('users leaving and joining between pages: those present throughout are listed exactly once', async (t) => {
  const presence = new LocalPresence()
  for (let i = 0; i < 100; i++) await presence.join('r', user(i))
  const seen = new Map<string, number>()
  let after: string | undefined
  let next = 100
  for (let pages = 0; pages < 1000; pages++) {
    const page = await presence.page('r', after === undefined ? { limit: 7 } : { limit: 7, after })
    for (const u of page.users) seen.set(u.id, (seen.get(u.id) ?? 0) + 1)
    if (page.next === undefined) break
    after = page.next
    // Some already listed leave, some not yet listed leave, a newcomer joins.
    const listed = page.users[0].id
    await presence.leave('r', { id: listed, name: '' })
    await presence.leave('r', user(99 - pages))
    await presence.join('r', user(next++))
  }
  t.ok(seen.size > 50, 'most were listed')
  t.strictSame([...seen].filter(([, n]) => n !== 1), [], 'nobody twice')
  const remaining = (await presence.page('r', { limit: 1000 })).users.map((u) => u.id)
  const throughout = remaining.filter((id) => Number(id.slice(1)) < 100)
  t.ok(throughout.length > 0, 'some were present throughout')
  t.strictSame(throughout.filter((id) => !seen.has(id)), [], 'everyone present throughout was listed')
})

t.test('leaves compact the index: paging a room that lost most of its users stays right', async (t) => {
  const presence = new LocalPresence()
  for (let i = 0; i < 500; i++) await presence.join('r', user(i))
  for (let i = 0; i < 500; i++) if (i % 10 !== 0) await presence.leave('r', user(i))
  t.equal(await presence.count('r'), 50)
  const { users } = await everyone(presence, 'r', 9)
  t.strictSame(users.map((u) => u.id), Array.from({ length: 50 }, (_, i) => `u${i * 10}`))
  for (let i = 500; i < 520; i++) await presence.join('r', user(i))
  t.equal((await everyone(presence, 'r', 1000)).users.length, 70)
  t.equal((await presence.page('r', { limit: 1 })).users[0].id, 'u0', 'the oldest first')
})

t.test('a cursor it never handed out is an empty last page', async (t) => {
  const presence = new LocalPresence()
  await presence.join('r', { id: 'alice', name: 'Alice' })
  for (const after of ['x', '-1', '1.5', '01', '', '99999999999999999']) {
    t.strictSame(await presence.page('r', { limit: 5, after }), { users: [], count: 1 }, JSON.stringify(after))
  }
  t.strictSame(await presence.page('r', { limit: 5, after: '999' }), { users: [], count: 1 }, 'past the end')
  t.strictSame(await presence.page('r', { limit: 5, after: '0' }), { users: [{ id: 'alice', name: 'Alice' }], count: 1 })
})

t.test('before start and after close nothing is announced; close forgets everyone', async (t) => {
  const presence = new LocalPresence()
  await presence.join('r', { id: 'alice', name: 'Alice' })
  const node = recorder()
  presence.start(node)
  await presence.join('r', { id: 'bob', name: 'Bob' })
  presence.close()
  t.strictSame(await presence.page('r', { limit: 5 }), { users: [], count: 0 })
  await presence.join('r', { id: 'carol', name: 'Carol' })
  await presence.leave('r', { id: 'carol', name: 'Carol' })
  await presence.rename('r', { id: 'carol', name: 'C' }, 'Carol')
  t.strictSame(node.events.map((e) => `${e.event} ${e.user.id}`), ['join bob'])
})
