import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat, { CloseCode } from '../index.js'
import { Client, listen, userFromQuery, userSocket } from './helpers/chat.js'

/** The plugin with users named by `?user=`, listening. */
async function server (t: Test): Promise<{ app: FastifyInstance, url: string }> {
  return await listen(t, { identify: userFromQuery })
}

/** A user's socket in `lobby`, past its welcome and joined. */
async function user (t: Test, url: string, id: string): Promise<Client> {
  const client = await userSocket(t, url, id)
  await client.expect('joined')
  return client
}

t.test('disconnect({ userId }) closes every socket of the user with 4000 and the reason, and no other', async (t) => {
  const { app, url } = await server(t)
  const tab1 = await user(t, url, 'mallory')
  const tab2 = await user(t, url, 'mallory')
  const bob = await user(t, url, 'bob')
  await tab1.expect('presence')
  t.equal(await app.chat.disconnect({ userId: 'mallory' }, { reason: 'spam' }), 2)
  t.strictSame(await tab1.closed, { code: CloseCode.DISCONNECTED, reason: 'spam' })
  t.strictSame(await tab2.closed, { code: 4000, reason: 'spam' })
  t.match(await bob.expect('presence'), { event: 'leave', user: { id: 'mallory' } })
  t.equal(app.chat.size, 1, 'bob is still here')
  t.equal(await app.chat.disconnect({ userId: 'nobody' }), 0, 'nobody matched')
})

t.test('disconnect({ clientId }) closes that one socket, with a default reason', async (t) => {
  const { app, url } = await server(t)
  const tab1 = await Client.connect(url, '/chat?user=alice')
  t.teardown(() => tab1.close())
  const { clientId } = await tab1.expect('welcome')
  await tab1.expect('joined')
  const tab2 = await user(t, url, 'alice')
  t.equal(await app.chat.disconnect({ clientId }), 1)
  t.strictSame(await tab1.closed, { code: 4000, reason: 'disconnected' })
  tab2.send({ type: 'message', text: 'still here' })
  t.match(await tab2.expect('message'), { text: 'still here' }, 'the other tab stays')
  t.equal(app.chat.size, 1)
})

t.test('removeFromRoom takes the user out: left with reason removed, the others see the leave', async (t) => {
  const { app, url } = await server(t)
  const mallory = await user(t, url, 'mallory')
  mallory.send({ type: 'join', room: 'dev' })
  await mallory.expect('joined')
  const bob = await user(t, url, 'bob')
  bob.send({ type: 'join', room: 'dev' })
  await bob.expect('joined')
  await mallory.expect('presence')
  await mallory.expect('presence')

  t.equal(await app.chat.removeFromRoom('dev', 'mallory', { reason: 'off topic' }), 1)
  t.strictSame(await mallory.expect('left'), { type: 'left', room: 'dev', reason: 'removed', message: 'off topic' })
  t.match(await bob.expect('presence'), { room: 'dev', event: 'leave', user: { id: 'mallory' } })
  t.strictSame((await app.chat.presence('dev')).users.map((u) => u.id), ['bob'])
  await app.chat.broadcast('dev', 'without mallory')
  await bob.expect('message')
  await app.chat.broadcast('lobby', 'marker')
  t.match(await mallory.expect('message'), { room: 'lobby', text: 'marker' }, 'still in lobby, and nothing of dev came first')
  await bob.expect('message')

  t.equal(await app.chat.removeFromRoom('dev', 'mallory'), 0, 'not in it any more')
  bob.send({ type: 'join', room: 'ops' })
  await bob.expect('joined')
  t.equal(await app.chat.removeFromRoom('ops', 'bob'), 1)
  t.strictSame(await bob.expect('left'), { type: 'left', room: 'ops', reason: 'removed' }, 'no message without a reason')
})

t.test('addToRoom joins every open socket of the user not in the room yet, as if they had asked', async (t) => {
  const { app, url } = await server(t)
  const tab1 = await user(t, url, 'alice')
  const tab2 = await user(t, url, 'alice')
  const bob = await user(t, url, 'bob')
  await tab1.expect('presence')
  await tab2.expect('presence')
  bob.send({ type: 'join', room: 'support' })
  await bob.expect('joined')
  await app.chat.broadcast('support', 'welcome to support')
  await bob.expect('message')
  tab2.send({ type: 'join', room: 'support' })
  await tab2.expect('joined')
  await bob.expect('presence')

  t.equal(await app.chat.addToRoom('support', 'alice'), 1, 'the tab already in is left alone')
  t.match(await tab1.expect('joined'), { room: 'support', history: [{ text: 'welcome to support' }] })
  await app.chat.broadcast('support', 'next')
  t.match(await tab2.expect('message'), { text: 'next' }, 'the other tab got no second joined')
  t.match(await tab1.expect('message'), { text: 'next' })
  t.equal(await app.chat.addToRoom('support', 'nobody'), 0)
})

t.test('addToRoom tells a socket that is in too many rooms, naming the room', async (t) => {
  const app = Fastify()
  await app.register(fastifyChat, { maxRoomsPerClient: 1, identify: () => ({ id: 'alice' }) })
  t.teardown(() => app.close())
  const url = (await app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws')
  const alice = await user(t, url, 'alice')
  t.equal(await app.chat.addToRoom('extra', 'alice'), 1)
  t.match(await alice.expect('error'), { code: 'too_many_rooms', room: 'extra' })
})

t.test('bad arguments throw with a code, before anything is sent', async (t) => {
  const { app } = await server(t)
  const chat = app.chat as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  const invalid = { code: 'FST_CHAT_INVALID_ARGUMENT' }
  await t.rejects(chat.disconnect(), invalid)
  await t.rejects(chat.disconnect({}), invalid)
  await t.rejects(chat.disconnect({ userId: 'a', clientId: 'b' }), invalid)
  await t.rejects(chat.disconnect({ userId: '' }), invalid)
  await t.rejects(chat.disconnect({ userId: 7 }), invalid)
  await t.rejects(chat.disconnect({ clientId: 'x'.repeat(129) }), invalid)
  await t.rejects(chat.disconnect({ userId: 'a' }, { reason: 'é'.repeat(62) }), invalid, 'a reason over 123 bytes')
  await t.rejects(chat.disconnect({ userId: 'a' }, { reason: 5 }), invalid)
  await t.rejects(chat.disconnect({ userId: 'a' }, 'spam'), invalid)
  await t.rejects(chat.removeFromRoom('no spaces', 'a'), { code: 'FST_CHAT_INVALID_ROOM' })
  await t.rejects(chat.removeFromRoom('dev', null), invalid)
  await t.rejects(chat.addToRoom('dev', ''), invalid)
  await t.rejects(chat.addToRoom('', 'a'), { code: 'FST_CHAT_INVALID_ROOM' })
  t.equal(await app.chat.disconnect({ userId: 'a' }, { reason: 'é'.repeat(61) }), 0, '122 bytes is fine')
})

t.test('once the app is closing, moderation rejects with FST_CHAT_CLOSED', async (t) => {
  const app = Fastify()
  await app.register(fastifyChat)
  await app.ready()
  await app.close()
  await t.rejects(app.chat.disconnect({ userId: 'a' }), { code: 'FST_CHAT_CLOSED' })
  await t.rejects(app.chat.addToRoom('dev', 'a'), { code: 'FST_CHAT_CLOSED' })
  await t.rejects(app.chat.removeFromRoom('dev', 'a'), { code: 'FST_CHAT_CLOSED' })
})
