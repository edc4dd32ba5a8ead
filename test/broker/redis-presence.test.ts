// Presence across servers (adapters) on one real redis-server.
import t from 'tap'
import type { Test } from 'tap'
import type { User } from '../../lib/protocol/wire.js'
import type { RecordingNode } from '../helpers/broker-conformance.js'
import { adminClient, redisNode, startRedis } from '../helpers/redis.js'

const alice: User = { id: 'alice-id', name: 'alice' }
const bob: User = { id: 'bob-id', name: 'bob' }
const carol: User = { id: 'carol-id', name: 'carol' }

async function names (list: Promise<User[]>): Promise<string[]> {
  return (await list).map((u) => u.name).sort()
}

async function expectEvent (t: Test, node: RecordingNode, event: 'join' | 'leave' | 'rename', user: User, what = `${event} ${user.name}`): Promise<void> {
  t.strictSame(await node.event(), { room: 'lobby', event, user }, what)
}

t.test('a user is announced when first present anywhere, and gone when gone everywhere', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = [await redisNode(t, redis), await redisNode(t, redis)]
  for (const { adapter } of [a, b]) await adapter.broker.subscribe('lobby')

  await a.adapter.presence.join('lobby', { ...alice, extra: 'not sent' } as User)
  await expectEvent(t, a.node, 'join', alice)
  await expectEvent(t, b.node, 'join', alice, 'another server sees the join, with only id and name')

  // Alice's second device, on the other server: she was present already.
  await b.adapter.presence.join('lobby', alice)
  await b.adapter.presence.join('lobby', bob)
  await expectEvent(t, a.node, 'join', bob, 'bob is next: alice was not announced twice')
  await expectEvent(t, b.node, 'join', bob)
  t.strictSame(await names(a.adapter.presence.list('lobby')), ['alice', 'bob'], 'each user once, whatever the servers')
  t.strictSame(await names(b.adapter.presence.list('other-room')), [])

  await a.adapter.presence.leave('lobby', alice)
  await b.adapter.presence.leave('lobby', bob)
  await expectEvent(t, a.node, 'leave', bob, 'bob is next: alice is still there through the other server')
  t.strictSame(await names(a.adapter.presence.list('lobby')), ['alice'])
  await b.adapter.presence.leave('lobby', alice)
  await expectEvent(t, a.node, 'leave', alice, 'gone everywhere')
  t.strictSame(await names(a.adapter.presence.list('lobby')), [])
})

t.test('a rename is announced with the previous name, and listed', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = [await redisNode(t, redis), await redisNode(t, redis)]
  await b.adapter.broker.subscribe('lobby')
  await a.adapter.presence.join('lobby', alice)
  await expectEvent(t, b.node, 'join', alice)
  const renamed = { id: alice.id, name: 'alicia' }
  await a.adapter.presence.rename('lobby', renamed, 'alice')
  t.strictSame(await b.node.event(), { room: 'lobby', event: 'rename', user: renamed, previous: 'alice' })
  t.strictSame(await names(b.adapter.presence.list('lobby')), ['alicia'])
  await a.adapter.presence.leave('lobby', renamed)
  await expectEvent(t, b.node, 'leave', renamed, 'the renamed member is the one taken out')
  t.strictSame(await names(b.adapter.presence.list('lobby')), [])
})

t.test('a dead server\'s users expire and are announced gone once; live ones are kept alive', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const ttl = 300
  const [a, b] = [await redisNode(t, redis, { presenceTtlMs: ttl }), await redisNode(t, redis, { presenceTtlMs: ttl })]
  for (const { adapter } of [a, b]) await adapter.broker.subscribe('lobby')
  await a.adapter.presence.join('lobby', alice)
  await b.adapter.presence.join('lobby', bob)
  for (const { node } of [a, b]) {
    await expectEvent(t, node, 'join', alice)
    await expectEvent(t, node, 'join', bob)
  }
  // What a server that crashed leaves behind: a member nobody refreshes.
  await admin.zadd('fastify-chat:{lobby}:presence', Date.now() + ttl, JSON.stringify(['crashed-server', carol.id, carol.name]))
  t.strictSame(await names(a.adapter.presence.list('lobby')), ['alice', 'bob', 'carol'])

  // Both servers sweep the room; exactly one announces her.
  await expectEvent(t, a.node, 'leave', carol)
  await expectEvent(t, b.node, 'leave', carol)
  t.strictSame(await names(b.adapter.presence.list('lobby')), ['alice', 'bob'], 'alice and bob joined before carol\'s expiry, and are still there')
  await a.adapter.presence.leave('lobby', alice)
  for (const { node } of [a, b]) await expectEvent(t, node, 'leave', alice, 'the next event: carol was announced once')
})

t.test('closing takes the server\'s users out at once', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = [await redisNode(t, redis), await redisNode(t, redis)]
  await b.adapter.broker.subscribe('lobby')
  await a.adapter.presence.join('lobby', alice)
  await a.adapter.presence.join('other', carol)
  await b.adapter.presence.join('lobby', bob)
  await expectEvent(t, b.node, 'join', alice)
  await expectEvent(t, b.node, 'join', bob)
  await a.adapter.close()
  await expectEvent(t, b.node, 'leave', alice)
  t.strictSame(await names(b.adapter.presence.list('lobby')), ['bob'])
  t.strictSame(await names(b.adapter.presence.list('other')), [], 'in every room')
})
