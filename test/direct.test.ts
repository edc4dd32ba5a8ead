import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyChatOptions } from '../index.js'
import { directRoom } from '../lib/chat/direct.js'
import { Client, listen, userFromQuery, userSocket } from './helpers/chat.js'

/** The plugin with users named by `?user=` (display name capitalised), no default room. */
async function server (t: Test, opts: FastifyChatOptions = {}): Promise<{ app: FastifyInstance, url: string }> {
  return await listen(t, { defaultRoom: null, identify: userFromQuery, ...opts })
}

t.test('alice opens a conversation with bob; bob, in no room, is brought in by her first message', async (t) => {
  const { app, url } = await server(t)
  const bob = await userSocket(t, url, 'bob')
  const alice = await userSocket(t, url, 'alice')
  alice.send({ type: 'join', with: 'bob' })
  const opened = await alice.expect('joined')
  const room = directRoom('alice', 'bob')
  t.match(opened, { room, recovered: false, history: [], users: [{ id: 'alice', name: 'Alice' }], with: { id: 'bob', name: 'Bob' } },
    'bob is connected here: his name from his socket')

  alice.send({ type: 'message', room, text: 'hi bob', cid: 'c1' })
  t.match(await alice.expect('message'), { room, text: 'hi bob' })
  const brought = await bob.expect('joined')
  t.match(brought, { room, with: { id: 'alice', name: 'Alice' } })
  const live = brought.history.some((m) => m.text === 'hi bob') ? [] : [await bob.expect('message')]
  t.strictSame([...brought.history, ...live].map((m) => m.text), ['hi bob'], 'the message once: in the history or right after')
  t.match(await alice.expect('presence'), { event: 'join', user: { id: 'bob', name: 'Bob' } })

  bob.send({ type: 'message', room, text: 'hi alice' })
  t.match(await alice.expect('message'), { text: 'hi alice', from: { id: 'bob', name: 'Bob' } })
  t.match(await bob.expect('message'), { text: 'hi alice' })
  alice.send({ type: 'message', room, text: 'again' })
  t.match(await bob.expect('message'), { text: 'again' }, 'in the room already: no second joined')
  await alice.expect('message')
  t.strictSame((await app.chat.history(room)).map((m) => m.text), ['hi bob', 'hi alice', 'again'])

  alice.send({ type: 'join', with: 'bob' })
  t.match(await alice.expect('joined'), { with: { id: 'bob', name: 'Bob' } }, 'with bob in the room, his name as present')
})

t.test('the other user\'s name is their id while nothing here knows it', async (t) => {
  const { url } = await server(t)
  const alice = await userSocket(t, url, 'alice')
  alice.send({ type: 'join', with: 'zed' })
  t.match(await alice.expect('joined'), { with: { id: 'zed', name: 'zed' } })
})

t.test('every tab of the other user that is not in the room is brought in; one already in gets no second joined', async (t) => {
  const { url } = await server(t)
  const tab1 = await userSocket(t, url, 'bob')
  const tab2 = await userSocket(t, url, 'bob')
  const alice = await userSocket(t, url, 'alice')
  const room = directRoom('alice', 'bob')
  tab1.send({ type: 'join', with: 'alice' })
  await tab1.expect('joined')
  alice.send({ type: 'join', with: 'bob' })
  await alice.expect('joined')
  await tab1.expect('presence')
  alice.send({ type: 'message', room, text: 'ping' })
  t.match(await tab1.expect('message'), { text: 'ping' })
  t.match(await tab2.expect('joined'), { room, with: { id: 'alice' } })
  alice.send({ type: 'message', room, text: 'marker' })
  t.match(await tab1.expect('message'), { text: 'marker' }, 'the first tab got no joined in between')
})

t.test('app.chat.addToRoom into a direct room adds one of its users as its user: with the other, whose sockets its messages bring in', async (t) => {
  const { app, url } = await server(t)
  const alice = await userSocket(t, url, 'alice')
  alice.send({ type: 'join', with: 'bob' })
  const { room } = await alice.expect('joined')
  alice.send({ type: 'leave', room })
  await alice.expect('left')
  const bob = await userSocket(t, url, 'bob')
  t.equal(await app.chat.addToRoom(room, 'bob'), 1)
  t.match(await bob.expect('joined'), { room, with: { id: 'alice', name: 'Alice' } })
  bob.send({ type: 'message', room, text: 'you called?' })
  await bob.expect('message')
  t.match(await alice.expect('joined'), { room, with: { id: 'bob', name: 'Bob' }, history: [{ text: 'you called?' }] }, 'alice is brought back in')
})

t.test('a third user can join neither by `with` nor by name', async (t) => {
  const { url } = await server(t)
  const alice = await userSocket(t, url, 'alice')
  alice.send({ type: 'join', with: 'bob' })
  const { room } = await alice.expect('joined')
  alice.send({ type: 'message', room, text: 'private' })
  await alice.expect('message')

  const carol = await userSocket(t, url, 'carol')
  carol.send({ type: 'join', room, cid: 'peek' })
  t.strictSame(await carol.expect('error'), { type: 'error', code: 'forbidden', message: `not allowed in room "${room}"`, room, cid: 'peek' })
  carol.send({ type: 'join', room, since: { epoch: 'x', offset: 0 } })
  t.match(await carol.expect('error'), { code: 'forbidden', room }, 'nor by resuming')
  carol.send({ type: 'join', with: 'alice' })
  const own = await carol.expect('joined')
  t.not(own.room, room, '`with` opens carol\'s own conversation, never theirs')
  t.strictSame(own.history, [])
  alice.send({ type: 'message', room, text: 'marker' })
  t.match(await alice.expect('message'), { text: 'marker' }, 'opening alone brought alice into nothing: her own message comes next')
})

t.test('a dm- room nobody opened is refused to everyone', async (t) => {
  const { url } = await server(t)
  const alice = await userSocket(t, url, 'alice')
  alice.send({ type: 'join', room: directRoom('alice', 'bob') })
  t.match(await alice.expect('error'), { code: 'forbidden' }, 'not opened yet: the pair is unknown')
  alice.send({ type: 'join', room: 'dm-made-up' })
  t.match(await alice.expect('error'), { code: 'forbidden', room: 'dm-made-up' })
})

t.test('bad targets get invalid_message', async (t) => {
  const { url } = await server(t)
  const alice = await userSocket(t, url, 'alice')
  const bad = [
    { type: 'join', with: 'alice' },
    { type: 'join', with: '' },
    { type: 'join', with: 'x'.repeat(129) },
    { type: 'join', with: 42 },
    { type: 'join', with: null },
    { type: 'join', with: 'bob', room: 'lobby' }
  ]
  for (const frame of bad) {
    alice.send({ ...frame, cid: 'c' })
    t.match(await alice.expect('error'), { code: 'invalid_message', cid: 'c' }, JSON.stringify(frame))
  }
  alice.send({ type: 'join', with: 'x'.repeat(128) })
  t.match(await alice.expect('joined'), { with: { id: 'x'.repeat(128) } }, '128 characters is fine')
})

t.test('authorize refusing direct gets forbidden, and nothing is opened', async (t) => {
  const { url } = await server(t, { authorize: ({ action, to }) => action !== 'direct' || to !== 'ceo' })
  const alice = await userSocket(t, url, 'alice')
  alice.send({ type: 'join', with: 'ceo', cid: 'd1' })
  t.match(await alice.expect('error'), { code: 'forbidden', room: directRoom('alice', 'ceo'), cid: 'd1' })
  alice.send({ type: 'join', room: directRoom('alice', 'ceo') })
  t.match(await alice.expect('error'), { code: 'forbidden' }, 'not recorded: not joinable by name either')
  alice.send({ type: 'join', with: 'bob' })
  t.match(await alice.expect('joined'), { with: { id: 'bob' } })
})

t.test('history, offsets and since recovery work in a direct room, by `with` and by name', async (t) => {
  const { url } = await server(t)
  const alice = await userSocket(t, url, 'alice')
  alice.send({ type: 'join', with: 'bob' })
  const { room } = await alice.expect('joined')
  const bob = await userSocket(t, url, 'bob')
  bob.send({ type: 'join', with: 'alice' })
  await bob.expect('joined')
  await alice.expect('presence')
  bob.send({ type: 'message', room, text: 'one' })
  const one = await alice.expect('message')
  await bob.expect('message')
  alice.close()
  await alice.closed
  await bob.expect('presence')
  bob.send({ type: 'message', room, text: 'two' })
  bob.send({ type: 'message', room, text: 'three' })
  await bob.expect('message')
  await bob.expect('message')

  const back = await userSocket(t, url, 'alice')
  back.send({ type: 'join', with: 'bob', since: { epoch: (await epochOf(back, room)), offset: one.offset } })
  t.match(await back.expect('joined'), { room, recovered: true, history: [{ text: 'two' }, { text: 'three' }], with: { id: 'bob', name: 'Bob' } })
  const other = await userSocket(t, url, 'alice')
  other.send({ type: 'join', room, since: { epoch: (await epochOf(other, room)), offset: 2 } })
  t.match(await other.expect('joined'), { room, recovered: true, history: [{ text: 'three' }], with: { id: 'bob' } }, 'by name, once recorded, for one of the two')
})

/** The room's epoch, read by joining and leaving it. */
async function epochOf (client: Client, room: string): Promise<string> {
  client.send({ type: 'join', room })
  const { epoch } = await client.expect('joined')
  client.send({ type: 'leave', room })
  await client.expect('left')
  return epoch
}
