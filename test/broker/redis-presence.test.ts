// Presence across servers (adapters) on one real redis-server.
import t from 'tap'
import type { Test } from 'tap'
import type { User } from '../../lib/protocol/wire.js'
import type { RecordingNode } from '../helpers/broker-conformance.js'
import { eventually } from '../helpers/eventually.js'
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
  const ttl = 300
  const { admin, a, b } = await aliceOnABobOnB(t, ttl, ttl)
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

const PRESENCE_KEY = 'fastify-chat:{lobby}:presence'
const GONE_KEY = 'fastify-chat:{lobby}:gone'

async function memberOf (admin: ReturnType<typeof adminClient>, user: User): Promise<string> {
  const member = (await admin.zrange(PRESENCE_KEY, '0', '-1')).find((m) => (JSON.parse(m) as string[])[1] === user.id)
  if (member === undefined) throw new Error(`${user.name} has no member`)
  return member
}

/** Servers A and B on one Redis, listening to the lobby, with alice present through A and bob through B. */
async function aliceOnABobOnB (t: Test, ttlA: number, ttlB: number): Promise<{ admin: ReturnType<typeof adminClient>, a: Awaited<ReturnType<typeof redisNode>>, b: Awaited<ReturnType<typeof redisNode>> }> {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const a = await redisNode(t, redis, { presenceTtlMs: ttlA })
  const b = await redisNode(t, redis, { presenceTtlMs: ttlB })
  for (const { adapter } of [a, b]) await adapter.broker.subscribe('lobby')
  await a.adapter.presence.join('lobby', alice)
  await b.adapter.presence.join('lobby', bob)
  for (const { node } of [a, b]) {
    await expectEvent(t, node, 'join', alice)
    await expectEvent(t, node, 'join', bob)
  }
  return { admin, a, b }
}

// A refreshes only when its connection comes back; B sweeps every half
// second, and its members outlive the reconnect a test forces.
const A_TTL = 600_000
const B_TTL = 3000

t.test('members Redis lost are added back by the next refresh, with a join only where a list lacked them', async (t) => {
  const { admin, a, b } = await aliceOnABobOnB(t, A_TTL, A_TTL)
  t.strictSame(await names(a.adapter.presence.list('lobby', true)), ['alice', 'bob'], 'A hands out a list with both')
  await admin.flushall()
  t.strictSame(await names(a.adapter.presence.list('lobby')), [], 'a look at the list, which nobody is handed')
  t.strictSame(await names(b.adapter.presence.list('lobby', true)), [], 'B hands out a list without them (a reset joined, say)')

  // Both connections come back, and both servers refresh at once.
  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  const restored = [(await b.node.event()).user.name, (await b.node.event()).user.name].sort()
  t.strictSame(restored, ['alice', 'bob'], 'B\'s members are told of both')
  const took = await eventually(async () => (await names(a.adapter.presence.list('lobby'))).join() === 'alice,bob', 1000, 'alice and bob listed again')
  t.comment(`listed again ${took} ms after B heard of both`)
  await a.adapter.presence.join('lobby', carol)
  await expectEvent(t, a.node, 'join', carol, 'A\'s members, whose list had both, get no join for them')
  await expectEvent(t, b.node, 'join', carol)
})

t.test('a member swept out while its server heard nothing is announced again, to the other servers', async (t) => {
  const { admin, a, b } = await aliceOnABobOnB(t, A_TTL, B_TTL)
  // What a sweep leaves while A is cut off: alice out, her leave published where A did not hear it.
  const member = await memberOf(admin, alice)
  await admin.multi().zrem(PRESENCE_KEY, member).zadd(GONE_KEY, Date.now(), member).exec()

  // A's connection comes back: its refresh runs at once.
  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  await expectEvent(t, b.node, 'join', alice, 'B\'s members are told alice is back')
  // A's connection is back (its refresh ran); B's may still be coming back.
  t.strictSame(await names(a.adapter.presence.list('lobby')), ['alice', 'bob'])
  t.equal(await admin.zscore(GONE_KEY, member), null, 'the tombstone is used up')
  await a.adapter.presence.join('lobby', carol)
  await expectEvent(t, a.node, 'join', carol, 'A\'s members, who never saw alice leave, get no join for her')
  await expectEvent(t, b.node, 'join', carol)
})

t.test('a live server\'s member swept while Redis stalled is announced gone and back, to every server', async (t) => {
  const { admin, a, b } = await aliceOnABobOnB(t, A_TTL, B_TTL)
  // A's refresh did not run in time: B's sweep finds alice expired.
  await admin.zadd(PRESENCE_KEY, 'XX', Date.now() - 1, await memberOf(admin, alice))
  for (const { node } of [a, b]) await expectEvent(t, node, 'leave', alice)
  t.strictSame(await names(b.adapter.presence.list('lobby')), ['bob'])

  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  for (const { node } of [a, b]) await expectEvent(t, node, 'join', alice, 'every server\'s members saw the leave, so every one gets the join')
  t.strictSame(await names(a.adapter.presence.list('lobby')), ['alice', 'bob'])
})

t.test('a user whose member expired but is not swept yet is still present: a join elsewhere is not announced', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const [a, b] = [await redisNode(t, redis, { presenceTtlMs: 600_000 }), await redisNode(t, redis, { presenceTtlMs: 600_000 })]
  await b.adapter.broker.subscribe('lobby')
  await admin.zadd(PRESENCE_KEY, String(Date.now() - 1), JSON.stringify(['crashed-server', alice.id, alice.name]))
  await a.adapter.presence.join('lobby', alice)
  await a.adapter.presence.join('lobby', bob)
  await expectEvent(t, b.node, 'join', bob, 'alice was never announced gone, so her join is not news')
  t.strictSame(await names(b.adapter.presence.list('lobby')), ['alice', 'bob'], 'the list sweeps the expired member; alice stays through A')
  await a.adapter.presence.leave('lobby', alice)
  await expectEvent(t, b.node, 'leave', alice, 'one leave, when she is gone everywhere')
})
