// Signals across two servers behind one real redis-server: they travel on the
// room's channel and never touch its stream.
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat, { redisAdapter } from '../../index.js'
import type { RedisAdapterOptions } from '../../index.js'
import { parseEnvelope } from '../../lib/broker/redis/envelope.js'
import type { RedisBroker } from '../../lib/broker/redis/redis-broker.js'
import type { SignalFrame } from '../../lib/protocol/wire.js'
import { Client, userSocket } from '../helpers/chat.js'
import { adminClient, redisNode, startRedis } from '../helpers/redis.js'
import type { RedisServer } from '../helpers/redis.js'

interface Node { app: FastifyInstance, url: string }

async function node (t: Test, redis: RedisServer, adapter: Partial<RedisAdapterOptions> = {}): Promise<Node> {
  const app = Fastify()
  await app.register(fastifyChat, {
    presenceGraceMs: 0,
    identify: (request) => {
      const { user } = request.query as { user: string }
      return { id: user, name: user }
    },
    adapter: redisAdapter({ url: redis.url, ...adapter } as RedisAdapterOptions)
  })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

/** A user's socket in `lobby`, past its welcome and joined. */
async function user (t: Test, url: string, id: string): Promise<Client> {
  const client = await userSocket(t, url, id)
  await client.expect('joined')
  return client
}

for (const shardedPubSub of [true, false]) {
  t.test(`a signal reaches members on both servers and is in no stream (${shardedPubSub ? 'SPUBLISH' : 'PUBLISH'})`, async (t) => {
    const redis = await startRedis(t)
    const a = await node(t, redis, { shardedPubSub })
    const b = await node(t, redis, { shardedPubSub })
    const alice = await user(t, a.url, 'alice')
    const bob = await user(t, b.url, 'bob')
    t.match(await alice.expect('presence'), { event: 'join', user: { id: 'bob' } })
    const aliceTab = await user(t, b.url, 'alice')

    alice.send({ type: 'signal', room: 'lobby', name: 'typing', data: [1, 'two'] })
    const expected = { type: 'signal', room: 'lobby', name: 'typing', from: { id: 'alice', name: 'alice' }, data: [1, 'two'] }
    t.strictSame(await bob.expect('signal'), expected, 'across servers')
    t.strictSame(await aliceTab.expect('signal'), expected, 'the sender\'s tab on the other server')
    bob.send({ type: 'signal', room: 'lobby', name: 'typing' })
    t.match(await alice.expect('signal'), { from: { id: 'bob' } }, 'and back')
    t.match(await aliceTab.expect('signal'), { from: { id: 'bob' } })

    // The sender's own socket got nothing of its signal: the marker is its next frame everywhere.
    alice.send({ type: 'message', text: 'marker' })
    for (const c of [alice, bob, aliceTab]) t.match(await c.expect('message'), { text: 'marker', offset: 1 }, 'signals take no offset')
    for (const n of [a, b]) t.strictSame((await n.app.chat.history('lobby')).map((m) => m.text), ['marker'])
    const admin = adminClient(t, redis)
    const keys = await admin.keys('*')
    const streams: string[] = []
    for (const key of keys) if (await admin.type(key) === 'stream') streams.push(key)
    let entries = 0
    for (const key of streams) entries += await admin.xlen(key)
    t.equal(entries, 1, 'the stream holds the message only')
    const carol = await user(t, b.url, 'carol')
    carol.send({ type: 'join', room: 'lobby' })
    t.strictSame((await carol.expect('joined')).history.map((m) => m.text), ['marker'])
  })
}

t.test('the signal envelope parses; unknown kinds do not', async (t) => {
  const s = { type: 'signal', room: 'r', name: 'typing', from: { id: 'a', name: 'a' } }
  t.strictSame(parseEnvelope(JSON.stringify({ t: 's', x: 'k', s })), { t: 's', x: 'k', s })
  t.equal(parseEnvelope(JSON.stringify({ t: 'z' })), null)
})

t.test('the broker: a signal reaches the servers that listen to its room only, and fails as unavailable without Redis', async (t) => {
  const redis = await startRedis(t)
  const a = await redisNode(t, redis)
  const b = await redisNode(t, redis)
  await b.adapter.broker.subscribe('r')
  const frame: SignalFrame = { type: 'signal', room: 'r', name: 'typing', from: { id: 'u', name: 'u' } }
  await a.adapter.broker.signal?.(frame, 'key-1')
  t.strictSame(await b.node.nextSignal(), { frame, exclude: 'key-1' })
  t.equal(a.node.signalsWaiting, 0, 'a server not in the room gets nothing')
  // One that arrives as the server leaves the room (before its UNSUBSCRIBE is done) is not handed on.
  ;(b.adapter.broker as RedisBroker).receiveSignal({ ...frame, room: 'gone' }, null)
  t.equal(b.node.signalsWaiting, 0)
  const page = await b.adapter.broker.recent('r', 10)
  t.strictSame([page.offset, page.messages], [0, []], 'nothing stored, nothing numbered')
  await redis.stop()
  await t.rejects(a.adapter.broker.signal?.(frame, null) ?? Promise.resolve(), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' })
})
