// Read positions across servers: two instances of the plugin on one real
// redis-server; users identified by `?user=` so one user can hold sockets on both.
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat, { redisAdapter } from '../index.js'
import type { ServerFrame } from '../lib/protocol/wire.js'
import { Client } from './helpers/chat.js'
import { adminClient, startRedis } from './helpers/redis.js'
import type { RedisServer } from './helpers/redis.js'

interface Node { app: FastifyInstance, url: string }
type Joined = Extract<ServerFrame, { type: 'joined' }>

function identify (request: { query: unknown }): { id: string, name: string } | Record<string, never> {
  const { user } = request.query as { user?: unknown }
  return typeof user === 'string' && user !== '' ? { id: user, name: user } : {}
}

async function node (t: Test, redis: RedisServer, prefix: string): Promise<Node> {
  const app = Fastify()
  await app.register(fastifyChat, { presenceGraceMs: 0, defaultRoom: null, identify, rateLimit: false, adapter: redisAdapter({ url: redis.url, prefix }) })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

async function connect (t: Test, at: Node, user?: string): Promise<Client> {
  const client = await Client.connect(at.url, user === undefined ? '/chat' : `/chat?user=${user}`)
  t.teardown(() => client.ws.terminate())
  await client.expect('welcome')
  return client
}

/** The next frame of `type`, past presence frames. */
async function until<T extends ServerFrame['type']> (client: Client, type: T): Promise<Extract<ServerFrame, { type: T }>> {
  for (let i = 0; i < 100; i++) {
    const frame = await client.next(`a ${type} frame`)
    if (frame.type === type) return frame as Extract<ServerFrame, { type: T }>
    if (frame.type !== 'presence') throw new Error(`expected a ${type} frame, got ${JSON.stringify(frame)}`)
  }
  throw new Error(`no ${type} frame within 100 frames`)
}

async function enter (client: Client, room: string): Promise<Joined> {
  client.send({ type: 'join', room })
  return await until(client, 'joined')
}

const redis = await startRedis(t)
let chats = 0

t.test('a read on one server reaches the user\'s sockets on the other, and joined there carries it', async (t) => {
  const prefix = `reads-${++chats}`
  const a = await node(t, redis, prefix)
  const b = await node(t, redis, prefix)
  const bob = await connect(t, a, 'bob')
  await enter(bob, 'lobby')
  for (let i = 0; i < 5; i++) {
    bob.send({ type: 'message', room: 'lobby', text: `m${i}` })
    await until(bob, 'message')
  }
  const onA = await connect(t, a, 'alice')
  const onB = await connect(t, b, 'alice')
  const alsoOnB = await connect(t, b, 'alice')
  t.match(await enter(onA, 'lobby'), { read: 0, unread: 5 })
  t.match(await enter(onB, 'lobby'), { read: 0, unread: 5 })
  t.match(await enter(alsoOnB, 'lobby'), { read: 0, unread: 5 })

  onA.send({ type: 'read', room: 'lobby', offset: 3 })
  t.strictSame(await until(onB, 'read'), { type: 'read', room: 'lobby', offset: 3 }, 'across servers')
  t.strictSame(await until(alsoOnB, 'read'), { type: 'read', room: 'lobby', offset: 3 }, 'to each of the user\'s sockets there')
  onB.send({ type: 'read', room: 'lobby', offset: 99 })
  t.strictSame(await until(onA, 'read'), { type: 'read', room: 'lobby', offset: 5 }, 'and back, clamped to the latest')
  t.strictSame(await until(alsoOnB, 'read'), { type: 'read', room: 'lobby', offset: 5 }, 'the other socket on the same server too')
  bob.send({ type: 'message', room: 'lobby', text: 'marker' })
  for (const client of [onA, onB, alsoOnB]) t.match(await until(client, 'message'), { text: 'marker' }, 'no read frame twice, none to the sender')

  const later = await connect(t, b, 'alice')
  t.match(await enter(later, 'lobby'), { offset: 6, read: 5, unread: 1 })
  t.strictSame(await a.app.chat.unread('alice'), { lobby: 1 })
  t.strictSame(await b.app.chat.unread('alice'), { lobby: 1 }, 'the same on every server')
})

t.test('a user on one server only: the read is not published; guests store nothing', async (t) => {
  const prefix = `reads-${++chats}`
  const a = await node(t, redis, prefix)
  const b = await node(t, redis, prefix)
  const admin = adminClient(t, redis)
  const bob = await connect(t, b, 'bob')
  await enter(bob, 'lobby')
  bob.send({ type: 'message', room: 'lobby', text: 'one' })
  await until(bob, 'message')
  const tab1 = await connect(t, a, 'alice')
  const tab2 = await connect(t, a, 'alice')
  await enter(tab1, 'lobby')
  await enter(tab2, 'lobby')
  const sub = admin.duplicate()
  t.teardown(() => sub.disconnect())
  const published: string[] = []
  sub.on('smessage', (_channel: string, payload: string) => published.push(payload))
  sub.on('message', (_channel: string, payload: string) => published.push(payload))
  await sub.ssubscribe(`${prefix}:{lobby}:ch`).catch(async () => await sub.subscribe(`${prefix}:{lobby}:ch`))
  tab1.send({ type: 'read', room: 'lobby', offset: 1 })
  t.strictSame(await until(tab2, 'read'), { type: 'read', room: 'lobby', offset: 1 }, 'the tab on the same server hears it')
  bob.send({ type: 'message', room: 'lobby', text: 'marker' })
  await until(tab2, 'message')
  t.notOk(published.some((payload) => payload.includes('"t":"r"')), 'nothing went through Redis for it')
  t.ok(published.some((payload) => payload.includes('marker')), 'while the room\'s channel was heard')

  const guest = await connect(t, a)
  await enter(guest, 'lobby')
  guest.send({ type: 'read', room: 'lobby', offset: 2 })
  guest.send({ type: 'join', room: 'lobby' })
  t.match(await until(guest, 'joined'), { read: 2, unread: 0 }, 'the guest socket remembers its own')
  t.strictSame(await admin.keys(`${prefix}:reads:*`), [`${prefix}:reads:alice`], 'only the identified user has a hash')
})
