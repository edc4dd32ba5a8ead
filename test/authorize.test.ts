import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat from '../index.js'
import type { AuthorizeRequest, FastifyChatOptions } from '../index.js'
import { Client, logLines } from './helpers/chat.js'

interface Server { app: FastifyInstance, url: string, logs: Array<Record<string, unknown>> }

/** The plugin with users named by `?user=`, no default room, and its error logs collected. */
async function server (t: Test, opts: FastifyChatOptions = {}): Promise<Server> {
  const { lines: logs, stream } = logLines()
  const app = Fastify({ logger: { level: 'error', stream } })
  await app.register(fastifyChat, {
    presenceGraceMs: 0,
    defaultRoom: null,
    identify: (request) => {
      const { user } = request.query as { user?: string }
      return { id: user, name: user, data: { staff: user?.startsWith('staff') === true } }
    },
    ...opts
  })
  t.teardown(() => app.close())
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: address.replace('http', 'ws'), logs }
}

/** A user's socket, past its welcome. */
async function user (t: Test, url: string, id: string, query = ''): Promise<Client> {
  const client = await Client.connect(url, `/chat?user=${id}${query}`)
  t.teardown(() => client.close())
  await client.expect('welcome')
  return client
}

const staffOnly = ({ room, client }: AuthorizeRequest): boolean =>
  !room.startsWith('secret') || (client.data as { staff: boolean }).staff

t.test('a refused join leaks nothing: no joined, history, users or presence event', async (t) => {
  const { app, url } = await server(t, { authorize: staffOnly })
  const staff = await user(t, url, 'staff-1')
  staff.send({ type: 'join', room: 'secret' })
  await staff.expect('joined')
  staff.send({ type: 'message', room: 'secret', text: 'the plan' })
  await staff.expect('message')

  const mallory = await user(t, url, 'mallory')
  mallory.send({ type: 'join', room: 'secret', cid: 'j1' })
  const refused = await mallory.expect('error')
  t.strictSame(refused, { type: 'error', code: 'forbidden', message: 'not allowed in room "secret"', room: 'secret', cid: 'j1' })
  // The next frame after the refusal is the answer to the next join: nothing of the room came between.
  mallory.send({ type: 'join', room: 'lobby' })
  const joined = await mallory.expect('joined')
  t.equal(joined.room, 'lobby')
  t.strictSame(joined.users, [{ id: 'mallory', name: 'mallory' }], 'nobody of the secret room')

  // The staff member's next presence event is another staff member, not mallory.
  const other = await user(t, url, 'staff-2')
  other.send({ type: 'join', room: 'secret' })
  t.match(await staff.expect('presence'), { event: 'join', user: { id: 'staff-2' } })
  t.strictSame((await app.chat.presence('secret')).users.map((u) => u.id).sort(), ['staff-1', 'staff-2'])
})

t.test('the auto-join of ?room= is asked too, and refused like any join', async (t) => {
  const { url } = await server(t, { authorize: staffOnly })
  const mallory = await Client.connect(url, '/chat?user=mallory&room=secret')
  t.teardown(() => mallory.close())
  await mallory.expect('welcome')
  t.match(await mallory.expect('error'), { code: 'forbidden', room: 'secret' })
  const staff = await Client.connect(url, '/chat?user=staff-1&room=secret')
  t.teardown(() => staff.close())
  await staff.expect('welcome')
  t.match(await staff.expect('joined'), { room: 'secret' })
})

t.test('a refused publish is not stored, reaches nobody, and onMessage never sees it', async (t) => {
  const seen: string[] = []
  const { app, url } = await server(t, {
    authorize: ({ action, room, client }) => action !== 'publish' || room !== 'news' || (client.data as { staff: boolean }).staff,
    onMessage: (message) => { seen.push(message.text) }
  })
  const reader = await user(t, url, 'reader')
  reader.send({ type: 'join', room: 'news' })
  await reader.expect('joined')
  reader.send({ type: 'message', room: 'news', text: 'my opinion', cid: 'm1' })
  t.strictSame(await reader.expect('error'), {
    type: 'error', code: 'forbidden', message: 'not allowed to send to room "news"', room: 'news', cid: 'm1'
  })
  const editor = await user(t, url, 'staff-ed')
  editor.send({ type: 'join', room: 'news' })
  await editor.expect('joined')
  await reader.expect('presence')
  editor.send({ type: 'message', room: 'news', text: 'headline' })
  t.match(await reader.expect('message'), { text: 'headline', offset: 1 }, 'the refused one took no offset and never came')
  t.strictSame((await app.chat.history('news')).map((m) => m.text), ['headline'])
  t.strictSame(seen, ['headline'])
})

t.test('a throwing or rejecting authorize refuses, logs with the request id, and the server goes on', async (t) => {
  const { url, logs } = await server(t, {
    authorize: async ({ room, client }) => {
      if (room === 'sync-throw') throw new Error('sync')
      if (room === 'reject') return await Promise.reject(new Error('async'))
      return client.id !== 'nobody'
    }
  })
  const alice = await user(t, url, 'alice')
  for (const room of ['sync-throw', 'reject']) {
    alice.send({ type: 'join', room })
    t.match(await alice.expect('error'), { code: 'forbidden', room })
  }
  alice.send({ type: 'join', room: 'fine' })
  t.match(await alice.expect('joined'), { room: 'fine' }, 'the socket is open and works')
  t.equal(logs.length, 2)
  for (const entry of logs) {
    t.match(entry, { level: 50, msg: /authorize threw/, reqId: String, err: { message: /sync|async/ } })
  }
})

t.test('a throwing synchronous authorize refuses too', async (t) => {
  const { url, logs } = await server(t, { authorize: () => { throw new Error('sync') } })
  const alice = await user(t, url, 'alice')
  alice.send({ type: 'join', room: 'any' })
  t.match(await alice.expect('error'), { code: 'forbidden', room: 'any' })
  t.match(logs, [{ msg: /authorize threw/, reqId: String }])
})

t.test('a resume with since into a room the user may no longer join is refused', async (t) => {
  const members = new Set(['alice', 'bob'])
  const { app, url } = await server(t, { authorize: ({ room, client }) => room !== 'team' || members.has(client.id) })
  const alice = await user(t, url, 'alice')
  alice.send({ type: 'join', room: 'team' })
  const first = await alice.expect('joined')
  await app.chat.broadcast('team', 'one')
  await alice.expect('message')
  alice.close()
  await alice.closed
  await app.chat.broadcast('team', 'two')

  members.delete('alice')
  const since = `${first.epoch}:1`
  const back = await Client.connect(url, `/chat?user=alice&room=team&since=${since}`)
  t.teardown(() => back.close())
  await back.expect('welcome')
  t.match(await back.expect('error'), { code: 'forbidden', room: 'team' }, 'the URL resume')
  back.send({ type: 'join', room: 'team', since: { epoch: first.epoch, offset: 1 } })
  t.match(await back.expect('error'), { code: 'forbidden', room: 'team' }, 'the frame resume')
  back.send({ type: 'join', room: 'open' })
  t.match(await back.expect('joined'), { room: 'open', history: [] }, 'and nothing of "two" came before this')

  members.add('alice')
  back.send({ type: 'join', room: 'team', since: { epoch: first.epoch, offset: 1 } })
  t.match(await back.expect('joined'), { room: 'team', recovered: true, history: [{ text: 'two' }] }, 'allowed again, it recovers')
})

t.test('a member refused on a rejoin is out of the room: no more messages, and the others see it leave', async (t) => {
  const members = new Set(['alice', 'bob'])
  const { app, url } = await server(t, { authorize: ({ room, client }) => room !== 'team' || members.has(client.id) })
  const alice = await user(t, url, 'alice')
  alice.send({ type: 'join', room: 'team' })
  await alice.expect('joined')
  alice.send({ type: 'join', room: 'lobby' })
  await alice.expect('joined')
  const bob = await user(t, url, 'bob')
  bob.send({ type: 'join', room: 'team' })
  await bob.expect('joined')
  await alice.expect('presence')

  members.delete('alice')
  alice.send({ type: 'join', room: 'team' })
  t.match(await alice.expect('error'), { code: 'forbidden', room: 'team' })
  t.match(await bob.expect('presence'), { event: 'leave', user: { id: 'alice' } })
  t.strictSame((await app.chat.presence('team')).users.map((u) => u.id), ['bob'])
  await app.chat.broadcast('team', 'after')
  await app.chat.broadcast('lobby', 'marker')
  t.match(await alice.expect('message'), { room: 'lobby', text: 'marker' }, 'the team message never reached alice')
})

t.test('authorize sees the action, the room and the client as hooks see it', async (t) => {
  const asked: Array<{ action: string, room: string, id: string, clientId: string, data: unknown, to?: string }> = []
  const { url } = await server(t, {
    authorize: ({ action, room, client, to }) => {
      asked.push({ action, room, id: client.id, clientId: client.clientId, data: client.data, ...(to === undefined ? {} : { to }) })
      return true
    }
  })
  const alice = await Client.connect(url, '/chat?user=staff-alice')
  t.teardown(() => alice.close())
  const welcome = await alice.expect('welcome')
  alice.send({ type: 'join', room: 'lobby' })
  await alice.expect('joined')
  alice.send({ type: 'message', room: 'lobby', text: 'hi' })
  await alice.expect('message')
  alice.send({ type: 'join', with: 'bob' })
  await alice.expect('joined')
  const client = { id: 'staff-alice', clientId: welcome.clientId, data: { staff: true } }
  t.strictSame(asked, [
    { action: 'join', room: 'lobby', ...client },
    { action: 'publish', room: 'lobby', ...client },
    { action: 'direct', room: asked[2]?.room, ...client, to: 'bob' }
  ])
  t.match(asked[2].room, /^dm-/)
})
