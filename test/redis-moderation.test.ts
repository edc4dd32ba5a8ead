// Moderation and direct messages across servers: two instances of the
// plugin on one real redis-server, users identified by `?user=` so one user
// can hold sockets on both.
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat, { redisAdapter } from '../index.js'
import type { FastifyChatOptions, RedisAdapterOptions } from '../index.js'
import { directRoom } from '../lib/chat/direct.js'
import type { ServerFrame } from '../lib/protocol/wire.js'
import { Client, userFromQuery, within } from './helpers/chat.js'
import { adminClient, allUnavailable, restartForControl, startRedis } from './helpers/redis.js'
import { startProxy } from './helpers/tcp-proxy.js'
import type { RedisServer } from './helpers/redis.js'

interface Node { app: FastifyInstance, url: string }

async function node (t: Test, redis: RedisServer, opts: FastifyChatOptions = {}, adapter: Partial<RedisAdapterOptions> = {}): Promise<Node> {
  const app = Fastify()
  await app.register(fastifyChat, {
    presenceGraceMs: 0,
    defaultRoom: null,
    identify: userFromQuery,
    ...opts,
    adapter: redisAdapter({ url: redis.url, presenceTtlMs: 15_000, ...adapter } as RedisAdapterOptions)
  })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

/** Two servers on one fresh redis-server. */
async function twoNodes (t: Test, opts: FastifyChatOptions = {}, adapter: Partial<RedisAdapterOptions> = {}): Promise<{ redis: RedisServer, a: Node, b: Node }> {
  const redis = await startRedis(t)
  return { redis, a: await node(t, redis, opts, adapter), b: await node(t, redis, opts, adapter) }
}

/** A socket of `user` on `node`, past its welcome; `clientId` is this socket's. */
async function connect (t: Test, at: Node, user: string): Promise<Client & { clientId: string }> {
  const client = await Client.connect(at.url, `/chat?user=${user}`)
  t.teardown(() => client.ws.terminate())
  const welcome = await client.expect('welcome')
  t.equal(welcome.id, user)
  return Object.assign(client, { clientId: welcome.clientId })
}

/** Joins `room` and returns the `joined` frame. */
async function enter (client: Client, room: string): Promise<Extract<ServerFrame, { type: 'joined' }>> {
  client.send({ type: 'join', room })
  const joined = await client.expect('joined')
  if (joined.room !== room) throw new Error(`joined ${joined.room}, not ${room}`)
  return joined
}

/** Sends a marker message to `room` from `from`; each of `to` must get it as its very next frame: nothing else arrived before it. */
async function marker (t: Test, from: Client, to: Client[], room: string, text: string): Promise<void> {
  from.send({ type: 'message', room, text })
  for (const client of to) t.match(await client.next(), { type: 'message', room, text }, `${text}: nothing arrived before it`)
}

/**
 * Alice on A and Carol on B in `lobby`, and Bob in it with one socket on A
 * and two on B; everyone has seen everyone's join.
 */
async function lobby (t: Test, a: Node, b: Node): Promise<{ alice: Client, carol: Client, bobA: Client & { clientId: string }, bobB: Array<Client & { clientId: string }> }> {
  const alice = await connect(t, a, 'alice')
  await enter(alice, 'lobby')
  const carol = await connect(t, b, 'carol')
  await enter(carol, 'lobby')
  t.match(await alice.expect('presence'), { event: 'join', user: { id: 'carol' } })
  const bobA = await connect(t, a, 'bob')
  await enter(bobA, 'lobby')
  for (const other of [alice, carol]) t.match(await other.expect('presence'), { event: 'join', user: { id: 'bob', name: 'Bob' } })
  const bobB = [await connect(t, b, 'bob'), await connect(t, b, 'bob')]
  for (const socket of bobB) await enter(socket, 'lobby')
  return { alice, carol, bobA, bobB }
}

t.test('disconnect({ userId }) on A closes the user\'s sockets on both servers with 4000 and the reason; A counts its own', async (t) => {
  const { a, b } = await twoNodes(t)
  const { alice, carol, bobA, bobB } = await lobby(t, a, b)

  t.equal(await a.app.chat.disconnect({ userId: 'bob' }, { reason: 'banned' }), 1, 'one socket closed on A; B\'s two are not counted')
  for (const socket of [bobA, ...bobB]) t.same(await within(socket.closed, 3000, 'bob\'s close'), { code: 4000, reason: 'banned' })
  for (const other of [alice, carol]) t.match(await other.expect('presence'), { event: 'leave', room: 'lobby', user: { id: 'bob' } }, 'the others see bob leave')
  await marker(t, alice, [alice, carol], 'lobby', 'after the kick')
  t.equal(await b.app.chat.disconnect({ userId: 'bob' }), 0, 'nothing of bob left on B')
  t.same([alice.ws.readyState, carol.ws.readyState], [alice.ws.OPEN, carol.ws.OPEN], 'the others keep their sockets')
})

t.test('disconnect({ clientId }) on A closes that one socket on B, with the default reason', async (t) => {
  const { a, b } = await twoNodes(t)
  const { alice, carol, bobA, bobB } = await lobby(t, a, b)
  const [first, second] = bobB as [Client & { clientId: string }, Client & { clientId: string }]
  t.not(first.clientId, second.clientId, 'each socket of one user has its own clientId')

  t.equal(await a.app.chat.disconnect({ clientId: first.clientId }), 0, 'the socket is on B: A closed none')
  t.same(await within(first.closed, 3000, 'the socket\'s close'), { code: 4000, reason: 'disconnected' })
  // Bob is still in the room through his other sockets: no leave, and they still get messages.
  await marker(t, alice, [alice, carol, bobA, second], 'lobby', 'after one socket went')

  t.equal(await b.app.chat.disconnect({ clientId: bobA.clientId }, { reason: 'that tab' }), 0, 'from B, A\'s socket is not counted')
  t.same(await within(bobA.closed, 3000, 'bob\'s socket on A'), { code: 4000, reason: 'that tab' })
  await marker(t, carol, [alice, carol, second], 'lobby', 'after the second went')
  t.equal(await a.app.chat.disconnect({ clientId: 'no-such-socket' }), 0)
})

t.test('removeFromRoom on A: bob\'s sockets on both servers get left (removed), the others see him leave once', async (t) => {
  const { a, b } = await twoNodes(t)
  const { alice, carol, bobA, bobB } = await lobby(t, a, b)
  // Also in another room, which he keeps.
  await enter(bobA, 'side')
  await enter(carol, 'side')
  t.match(await bobA.expect('presence'), { room: 'side', event: 'join', user: { id: 'carol' } })

  t.equal(await a.app.chat.removeFromRoom('lobby', 'bob', { reason: 'spam' }), 1, 'one socket removed on A')
  for (const socket of [bobA, ...bobB]) {
    t.same(await socket.next(), { type: 'left', room: 'lobby', reason: 'removed', message: 'spam' }, 'told why')
  }
  for (const other of [alice, carol]) t.match(await other.expect('presence'), { room: 'lobby', event: 'leave', user: { id: 'bob' } })
  await marker(t, alice, [alice, carol], 'lobby', 'after the removal')
  // Still connected, no longer in the room, still in the other one.
  for (const socket of [bobA, ...bobB]) {
    socket.send({ type: 'message', room: 'lobby', text: 'let me back', cid: 'back' })
    t.match(await socket.expect('error'), { code: 'not_in_room', cid: 'back' })
  }
  await marker(t, carol, [carol, bobA], 'side', 'the other room')
  t.equal(await b.app.chat.removeFromRoom('lobby', 'bob'), 0, 'nobody left to remove')
})

t.test('addToRoom on A: bob\'s sockets on both servers join, the others see him join once; authorize is not asked', async (t) => {
  const asked: string[] = []
  const opts: FastifyChatOptions = {
    authorize: ({ action, room, client }) => {
      asked.push(`${action} ${room} ${client.id}`)
      return !(room === 'staff' && client.id === 'bob')
    }
  }
  const { a, b } = await twoNodes(t, opts)
  const alice = await connect(t, a, 'alice')
  await enter(alice, 'staff')
  const carol = await connect(t, b, 'carol')
  await enter(carol, 'staff')
  t.match(await alice.expect('presence'), { event: 'join', user: { id: 'carol' } })
  const bobA = await connect(t, a, 'bob')
  const bobB = await connect(t, b, 'bob')
  bobB.send({ type: 'join', room: 'staff' })
  t.match(await bobB.expect('error'), { code: 'forbidden', room: 'staff' }, 'bob may not join by himself')
  asked.length = 0

  t.equal(await a.app.chat.addToRoom('staff', 'bob'), 1, 'one socket added on A')
  for (const socket of [bobA, bobB]) {
    const joined = await socket.expect('joined')
    t.match(joined, { room: 'staff', recovered: false })
    t.same(joined.users.map((u) => u.id).sort(), ['alice', 'bob', 'carol'])
  }
  for (const other of [alice, carol]) t.match(await other.expect('presence'), { room: 'staff', event: 'join', user: { id: 'bob', name: 'Bob' } })
  t.same(asked, [], 'authorize was not asked')
  await marker(t, alice, [alice, carol, bobA, bobB], 'staff', 'after the add')

  t.equal(await b.app.chat.addToRoom('staff', 'bob'), 0, 'already in on B: nothing added')
  await marker(t, carol, [alice, carol, bobA, bobB], 'staff', 'no second joined')

  t.equal(await b.app.chat.removeFromRoom('staff', 'bob'), 1)
  for (const socket of [bobA, bobB]) t.same(await socket.next(), { type: 'left', room: 'staff', reason: 'removed' }, 'no reason given: no message')
  for (const other of [alice, carol]) t.match(await other.expect('presence'), { room: 'staff', event: 'leave', user: { id: 'bob' } })
})

t.test('a hung Redis: each moderation call rejects with FST_CHAT_ADAPTER_UNAVAILABLE within commandTimeoutMs', async (t) => {
  const commandTimeoutMs = 300
  const { redis, a, b } = await twoNodes(t, {}, { commandTimeoutMs })
  const { alice } = await lobby(t, a, b)
  const admin = adminClient(t, redis)
  // Answered at once; from then on Redis answers no client until it lifts.
  await admin.call('CLIENT', 'PAUSE', '1500', 'ALL')
  const waited = await allUnavailable(t, {
    disconnect: async () => await a.app.chat.disconnect({ userId: 'bob' }),
    'disconnect by clientId': async () => await a.app.chat.disconnect({ clientId: 'x' }),
    removeFromRoom: async () => await a.app.chat.removeFromRoom('lobby', 'bob'),
    addToRoom: async () => await a.app.chat.addToRoom('lobby', 'bob')
  })
  t.ok(waited < 1200, `rejected after ${Math.round(waited)} ms, before Redis answered again`)
  t.equal(alice.ws.readyState, alice.ws.OPEN)
})

t.test('Redis killed: moderation rejects at once and acts on nothing; once restarted it works again on both servers', async (t) => {
  const commandTimeoutMs = 300
  const { redis, a, b } = await twoNodes(t, {}, { commandTimeoutMs })
  const { bobA, bobB } = await lobby(t, a, b)

  await redis.kill()
  const waited = await allUnavailable(t, {
    disconnect: async () => await a.app.chat.disconnect({ userId: 'bob' }, { reason: 'while down' }),
    removeFromRoom: async () => await a.app.chat.removeFromRoom('lobby', 'bob', { reason: 'while down' }),
    addToRoom: async () => await a.app.chat.addToRoom('elsewhere', 'bob'),
    'disconnect from B': async () => await b.app.chat.disconnect({ userId: 'bob' }, { reason: 'while down' })
  })
  t.ok(waited < commandTimeoutMs + 1000, `all rejected within ${Math.round(waited)} ms`)

  await restartForControl(t, redis, 2)
  t.equal(await a.app.chat.disconnect({ userId: 'bob' }, { reason: 'after the restart' }), 1)
  // A socket a failed call had closed would carry that call's reason.
  for (const socket of [bobA, ...bobB]) {
    t.same(await within(socket.closed, 3000, 'bob\'s close'), { code: 4000, reason: 'after the restart' }, 'closed by the call after the restart, on either server')
  }
})

/** Xavier on A and Yvonne on B, past their welcomes, and the name of their direct room. */
async function xavierAndYvonne (t: Test): Promise<{ a: Node, b: Node, xavier: Client, yvonne: Client, room: string }> {
  const { a, b } = await twoNodes(t)
  return { a, b, xavier: await connect(t, a, 'xavier'), yvonne: await connect(t, b, 'yvonne'), room: directRoom('xavier', 'yvonne') }
}

/**
 * Publishes `commands` on the control channel as another server would, then
 * a well-formed add of bob to `probe`: commands run in the order they
 * arrive, each socket's actions in order, so once each of bob's sockets has
 * the probe's `joined`, whatever the commands before it did is done.
 */
async function commandsThenProbe (t: Test, admin: Redis, commands: unknown[], bob: Client[]): Promise<void> {
  for (const command of [...commands, { type: 'add', room: 'probe', userId: 'bob' }]) {
    t.equal(await admin.spublish('fastify-chat:control', JSON.stringify({ t: 'c', s: 'elsewhere', c: command })), 2, `published: ${JSON.stringify(command)}`)
  }
  for (const socket of bob) t.match(await socket.next(), { type: 'joined', room: 'probe' }, 'the next frame is the probe\'s joined')
}

t.test('control payloads that are not a well-formed command act on nothing and break nothing', async (t) => {
  const { redis, a, b } = await twoNodes(t)
  const { alice, carol, bobA, bobB } = await lobby(t, a, b)
  const admin = adminClient(t, redis)
  await commandsThenProbe(t, admin, [
    [],
    {},
    { type: 'ban', userId: 'bob' },
    { type: 'disconnect', reason: 'no target' },
    { type: 'disconnect', userId: 42, reason: 'r' },
    { type: 'disconnect', clientId: { key: 1 }, reason: 'r' },
    { type: 'remove', userId: 'bob' },
    { type: 'remove', room: ['lobby'], userId: 'bob' },
    { type: 'add', room: 'lobby', userId: ['bob'] }
  ], [bobA, ...bobB])
  await marker(t, alice, [alice, carol, bobA, ...bobB], 'lobby', 'after the junk')
  t.same(a.app.chat.rooms().sort(), ['lobby', 'probe'], 'no room was made on A')
  t.same(b.app.chat.rooms().sort(), ['lobby', 'probe'], 'nor on B')
  t.equal(await a.app.chat.disconnect({ userId: 'bob' }), 1, 'moderation still works')
  for (const socket of [bobA, ...bobB]) t.match(await within(socket.closed, 3000, 'bob\'s close'), { code: 4000 })
})

t.test('an add command naming no room, or one that breaks the room rule, joins nobody', async (t) => {
  const { redis, a, b } = await twoNodes(t)
  const { bobA, bobB } = await lobby(t, a, b)
  const admin = adminClient(t, redis)
  await commandsThenProbe(t, admin, [
    { type: 'add', userId: 'bob' },
    { type: 'add', room: 'not a room!', userId: 'bob' }
  ], [bobA, ...bobB])
  t.same(a.app.chat.rooms().sort(), ['lobby', 'probe'], 'no room was made on A')
  t.same(b.app.chat.rooms().sort(), ['lobby', 'probe'], 'nor on B')
})

t.test('a direct message reaches the other user on another server, exactly once, in its joined', async (t) => {
  const { a, xavier, yvonne, room } = await xavierAndYvonne(t)

  xavier.send({ type: 'join', with: 'yvonne' })
  const opened = await xavier.expect('joined')
  t.match(opened, { room, history: [], with: { id: 'yvonne', name: 'yvonne' } }, 'the other named by their id until they open it themselves')
  t.same(opened.users.map((u) => u.id), ['xavier'])
  xavier.send({ type: 'message', room, text: 'hello', cid: 'h1' })
  t.match(await xavier.expect('message'), { room, text: 'hello', offset: 1 })

  const joined = await yvonne.expect('joined')
  t.match(joined, { room, with: { id: 'xavier', name: 'Xavier' } }, 'yvonne is brought in on B')
  t.same(joined.users.map((u) => u.id).sort(), ['xavier', 'yvonne'])
  let copies = joined.history.filter((m) => m.cid === 'h1').length
  t.match(await xavier.expect('presence'), { room, event: 'join', user: { id: 'yvonne' } })
  xavier.send({ type: 'message', room, text: 'second' })
  t.match(await xavier.expect('message'), { text: 'second' })
  for (let i = 0; i < 3; i++) {
    const frame = await yvonne.next()
    if (frame.type === 'message' && frame.text === 'second') break
    if (frame.type === 'message' && frame.cid === 'h1') copies++
    else t.fail(`unexpected frame ${JSON.stringify(frame)}`)
  }
  t.equal(copies, 1, 'the message reached yvonne once, in her joined or right after it')

  // She answers: already in, nobody is brought in again.
  yvonne.send({ type: 'message', room, text: 'hi back' })
  for (const client of [xavier, yvonne]) t.match(await client.next(), { type: 'message', room, text: 'hi back', from: { id: 'yvonne', name: 'Yvonne' } })
  t.same((await a.app.chat.history(room)).map((m) => m.text), ['hello', 'second', 'hi back'], 'stored like any room')
})

t.test('a third user cannot join a direct room, by with or by name, on either server', async (t) => {
  const { a, b, xavier, yvonne, room } = await xavierAndYvonne(t)
  xavier.send({ type: 'join', with: 'yvonne' })
  t.match(await xavier.expect('joined'), { room })
  yvonne.send({ type: 'join', with: 'xavier' })
  t.match(await yvonne.expect('joined'), { room, with: { id: 'xavier', name: 'Xavier' } })
  t.match(await xavier.expect('presence'), { room, event: 'join', user: { id: 'yvonne' } })
  await marker(t, xavier, [xavier, yvonne], room, 'secret')

  for (const [server, at] of [['A', a], ['B', b]] as const) {
    const zoe = await connect(t, at, 'zoe')
    zoe.send({ type: 'join', room, cid: 'by-name' })
    t.match(await zoe.next(), { type: 'error', code: 'forbidden', room, cid: 'by-name' }, `by name on ${server}: forbidden`)
    zoe.send({ type: 'join', with: 'xavier' })
    const own = await zoe.expect('joined')
    t.not(own.room, room, `by with on ${server}: another room`)
    t.equal(own.room, directRoom('xavier', 'zoe'))
    t.same(own.history, [], 'nothing of the other conversation')
    t.same(own.users.map((u) => u.id), ['zoe'])
    t.match(own, { with: { id: 'xavier' } })
    // What zoe was sent after the refusal was her own room's joined: nothing of the refused one.
    zoe.send({ type: 'message', room, text: 'let me in', cid: 'in' })
    t.match(await zoe.expect('error'), { code: 'not_in_room', cid: 'in' })
    zoe.close()
    await zoe.closed
  }
  await marker(t, yvonne, [xavier, yvonne], room, 'still only us')
  t.same((await b.app.chat.presence(room)).users.map((u) => u.id).sort(), ['xavier', 'yvonne'])
})

t.test('history and since recovery in a direct room, across servers', async (t) => {
  const { a, b, xavier, yvonne, room } = await xavierAndYvonne(t)
  yvonne.send({ type: 'join', with: 'xavier' })
  const { epoch } = await yvonne.expect('joined')
  yvonne.send({ type: 'message', room, text: 'one' })
  const one = await yvonne.expect('message')
  t.match(await xavier.expect('joined'), { room, history: [{ text: 'one' }], with: { id: 'yvonne', name: 'Yvonne' } })
  yvonne.close()
  await yvonne.closed
  t.match(await xavier.expect('presence'), { room, event: 'leave', user: { id: 'yvonne' } })

  xavier.send({ type: 'message', room, text: 'two' })
  xavier.send({ type: 'message', room, text: 'three' })
  t.same((await Promise.all([xavier.expect('message'), xavier.expect('message')])).map((m) => m.text), ['two', 'three'])

  // Back on the other server, by the room's name, with where she stopped.
  const back = await connect(t, a, 'yvonne')
  back.send({ type: 'join', room, since: { epoch, offset: one.offset } })
  const resumed = await back.expect('joined')
  t.match(await xavier.expect('presence'), { room, event: 'join', user: { id: 'yvonne' } })
  // Xavier never opened it himself (yvonne's message brought him in), but he is present: named by his current name.
  t.match(resumed, { room, epoch, recovered: true, with: { id: 'xavier', name: 'Xavier' } })
  t.same(resumed.history.map((m) => m.text), ['two', 'three'], 'exactly what she missed')

  // And by `with`, from B, with since.
  const again = await connect(t, b, 'yvonne')
  again.send({ type: 'join', with: 'xavier', since: { epoch, offset: resumed.offset } })
  t.match(await again.expect('joined'), { room, recovered: true, history: [], with: { id: 'xavier' } })
  xavier.send({ type: 'join', with: 'yvonne' })
  const reopened = await xavier.expect('joined')
  t.same(reopened.history.map((m) => m.text), ['one', 'two', 'three'], 'the history, opened again')
  t.same((await b.app.chat.history(room, { since: 1 })).map((m) => m.text), ['two', 'three'])
})

t.test('a socket that opens while a message brings its user in is left to join by itself: its first joined is the one it asked for', async (t) => {
  const redis = await startRedis(t)
  // A's Redis is 100 ms away each way: the add that follows xavier's message reaches Redis, then A 100 ms later.
  const slow = await startProxy(t, redis.port, { delayMs: 100 })
  const a = await node(t, redis, {}, { url: slow.url })
  const b = await node(t, redis)
  const xavier = await connect(t, a, 'xavier')
  const yvonne = await connect(t, b, 'yvonne')
  const room = directRoom('xavier', 'yvonne')
  yvonne.send({ type: 'join', with: 'xavier' })
  const { epoch } = await yvonne.expect('joined')
  yvonne.send({ type: 'message', room, text: 'one' })
  const one = await yvonne.expect('message')
  t.match(await xavier.expect('joined'), { room, history: [{ text: 'one' }] })
  yvonne.close()
  await yvonne.closed
  t.match(await xavier.expect('presence'), { room, event: 'leave', user: { id: 'yvonne' } })

  const watcher = adminClient(t, redis)
  await watcher.ssubscribe('fastify-chat:control')
  const addSent = new Promise<void>((resolve) => {
    watcher.on('smessage', (_channel: string, payload: string) => {
      const { c: command } = JSON.parse(payload) as { c: { type: string, userId: string } }
      if (command.type === 'add' && command.userId === 'yvonne') resolve()
    })
  })
  xavier.send({ type: 'message', room, text: 'two' })
  await within(addSent, 5000, 'the add that follows xavier\'s message')
  // Open before A hears back from Redis that its add went out.
  const back = await connect(t, a, 'yvonne')
  // A command on A's Redis connection after the add's: once answered, A has run the add on its own sockets.
  t.same((await a.app.chat.history(room)).map((m) => m.text), ['one', 'two'])
  back.send({ type: 'join', room, since: { epoch, offset: one.offset } })
  const resumed = await back.next()
  t.match(resumed, { type: 'joined', room, epoch, recovered: true }, 'the first joined answers its own join')
  t.same((resumed as Extract<ServerFrame, { type: 'joined' }>).history.map((m) => m.text), ['two'])
  // Open when 'three' was sent, it would be brought in by it; in the room already, it just gets it.
  await marker(t, xavier, [back], room, 'three')
})

t.test('Redis down: opening a direct conversation or joining one by name answers unavailable', async (t) => {
  const redis = await startRedis(t)
  const a = await node(t, redis, {}, { commandTimeoutMs: 300 })
  const xavier = await connect(t, a, 'xavier')
  await redis.kill()
  xavier.send({ type: 'join', with: 'yvonne', cid: 'w' })
  t.match(await xavier.expect('error'), { code: 'unavailable', cid: 'w', room: directRoom('xavier', 'yvonne') })
  xavier.send({ type: 'join', room: directRoom('xavier', 'yvonne'), cid: 'n' })
  t.match(await xavier.expect('error'), { code: 'unavailable', cid: 'n' })
  t.equal(xavier.ws.readyState, xavier.ws.OPEN)
})
