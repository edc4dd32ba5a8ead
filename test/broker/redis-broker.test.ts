// The Redis broker between several servers (adapters) on one real redis-server.
import type { Redis } from 'ioredis'
import t from 'tap'
import type { Test } from 'tap'
import type { RedisAdapter } from '../../lib/broker/redis/redis-adapter.js'
import type { RecordingNode } from '../helpers/broker-conformance.js'
import { message } from '../helpers/broker-conformance.js'
import { adapterEvent, adminClient, redisNode, startRedis } from '../helpers/redis.js'

async function texts (node: RecordingNode, count: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < count; i++) out.push((await node.delivery()).message.text)
  return out
}

/**
 * Drops `adapter`'s subscriber connection and keeps it from reconnecting
 * (Redis refuses new clients) until the returned function is called: a
 * window in which pub/sub cannot reach it, as in a network split.
 */
async function cutSubscriber (t: Test, admin: Redis, adapter: RedisAdapter, room: string): Promise<() => Promise<void>> {
  // The only client subscribed to `room`'s channel is this adapter's subscriber.
  const clients = (await admin.client('LIST') as string).trim().split('\n')
  const subscribed = []
  for (const line of clients) {
    const id = /\bid=(\d+)/.exec(line)?.[1]
    if (/\bsub=[1-9]/.test(line) && id !== undefined) subscribed.push(id)
  }
  if (subscribed.length !== 1) throw new Error(`expected one subscribed client, got ${subscribed.length}`)
  const down = adapterEvent('down', 'subscriber')
  await admin.config('SET', 'maxclients', String(clients.length - 1))
  await admin.client('KILL', 'ID', subscribed[0] as string)
  await down
  await t.rejects(adapter.broker.publish(message(room, 'refused'), null), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' }, 'no publish without a subscriber')
  return async () => {
    const up = adapterEvent('up', 'subscriber')
    await admin.config('SET', 'maxclients', '10000')
    await up
  }
}

t.test('several servers deliver every message once, in one order', async (t) => {
  const redis = await startRedis(t)
  const servers = [await redisNode(t, redis), await redisNode(t, redis), await redisNode(t, redis)]
  for (const { adapter } of servers) await adapter.broker.subscribe('lobby')
  // 30 interleaved publishes from 3 servers at once.
  await Promise.all(Array.from({ length: 30 }, async (_, i) => await servers[i % 3]?.adapter.broker.publish(message('lobby', `s${i % 3}-${i}`), null)))
  const seen = await Promise.all(servers.map(async ({ node }) => {
    const out = []
    for (let i = 0; i < 30; i++) out.push((await node.delivery()).message)
    return out
  }))
  t.strictSame(seen[0]?.map((m) => m.offset), Array.from({ length: 30 }, (_, i) => i + 1), 'offsets consecutive across servers')
  t.strictSame(seen[1], seen[0], 'server 2 saw the same messages in the same order')
  t.strictSame(seen[2], seen[0], 'server 3 too')
  await servers[0]?.adapter.broker.publish(message('lobby', 'marker'), null)
  for (const { node } of servers) t.equal((await node.delivery()).message.text, 'marker', 'nothing else arrived')
})

t.test('a cid retried on another server is stored and delivered once', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = [await redisNode(t, redis), await redisNode(t, redis)]
  await b.adapter.broker.subscribe('lobby')
  const first = await a.adapter.broker.publish(message('lobby', 'once', 'retry-1'), null)
  const again = await b.adapter.broker.publish(message('lobby', 'once', 'retry-1'), 'conn-2')
  t.strictSame(again, { message: first.message, duplicate: true })
  await a.adapter.broker.publish(message('lobby', 'marker'), null)
  t.strictSame(await texts(b.node, 2), ['once', 'marker'], 'the retry was not delivered')
})

t.test('after the subscriber reconnects, what pub/sub missed is delivered from the stream, once, in order', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const a = await redisNode(t, redis)
  const b = await redisNode(t, redis)
  await a.adapter.broker.subscribe('lobby')
  await b.adapter.broker.publish(message('lobby', 'before'), null)
  t.equal((await a.node.delivery()).message.text, 'before')

  const restore = await cutSubscriber(t, admin, a.adapter, 'lobby')
  await b.adapter.broker.publish(message('lobby', 'missed 1'), 'conn-b')
  await b.adapter.broker.publish(message('lobby', 'missed 2'), null)
  await restore()

  const caughtUp = [await a.node.delivery(), await a.node.delivery()]
  t.strictSame(caughtUp.map((d) => [d.message.offset, d.message.text]), [[2, 'missed 1'], [3, 'missed 2']], '"before" was not delivered again')
  await b.adapter.broker.publish(message('lobby', 'live again'), null)
  t.strictSame(await texts(a.node, 1), ['live again'], 'then pub/sub, with nothing twice')
})

t.test('a room left while the subscriber was down is unsubscribed once it is back', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const a = await redisNode(t, redis)
  const b = await redisNode(t, redis)
  await a.adapter.broker.subscribe('left')
  const restore = await cutSubscriber(t, admin, a.adapter, 'left')
  await t.rejects(a.adapter.broker.subscribe('kept'), 'subscribing while down fails')
  await t.resolves(a.adapter.broker.unsubscribe('left'), 'leaving while down does not fail')
  await restore()
  t.same(await admin.pubsub('NUMSUB', 'fastify-chat:{left}:ch'), ['fastify-chat:{left}:ch', 0], 'no longer subscribed in Redis')
  await a.adapter.broker.subscribe('kept')
  await b.adapter.broker.publish(message('left', 'not for a'), null)
  await b.adapter.broker.publish(message('kept', 'marker'), null)
  t.strictSame(await texts(a.node, 1), ['marker'])
})

t.test('a lost history (FLUSHALL) starts a new epoch, whose messages are delivered though their offsets repeat', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const a = await redisNode(t, redis)
  await a.adapter.broker.subscribe('lobby')
  await a.adapter.broker.publish(message('lobby', 'one'), null)
  await a.adapter.broker.publish(message('lobby', 'two'), null)
  const { epoch } = await a.adapter.broker.recent('lobby', 0)
  t.strictSame(await texts(a.node, 2), ['one', 'two'])
  await admin.flushall()
  const after = await a.adapter.broker.publish(message('lobby', 'after the flush'), null)
  t.equal(after.message.offset, 1, 'numbering starts over')
  t.equal((await a.node.delivery()).message.text, 'after the flush')
  const page = await a.adapter.broker.recent('lobby', 10)
  t.not(page.epoch, epoch, 'a new epoch')
  t.strictSame(page.messages.map((m) => m.text), ['after the flush'])
  t.equal(await a.adapter.broker.since('lobby', 2), null, 'an offset of the old epoch is beyond the new latest')
})

t.test('historySize 0 keeps no history but still numbers and delivers', async (t) => {
  const redis = await startRedis(t)
  const a = await redisNode(t, redis, {}, 0)
  await a.adapter.broker.subscribe('lobby')
  t.equal((await a.adapter.broker.publish(message('lobby', 'fleeting'), null)).message.offset, 1)
  t.equal((await a.node.delivery()).message.text, 'fleeting')
  t.strictSame(await a.adapter.broker.recent('lobby', 10).then((p) => [p.offset, p.messages]), [1, []])
  t.equal(await a.adapter.broker.since('lobby', 0), null, 'the message is not kept: a gap')
})
