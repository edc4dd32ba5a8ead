// Presence across servers (adapters) on one real redis-server.
import { createHash } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import { Redis } from 'ioredis'
import type { Presence, PresenceEvent } from '../../lib/broker/presence.js'
import { RedisKeys } from '../../lib/broker/redis/keys.js'
import { runScript } from '../../lib/broker/redis/lua.js'
import { SWEEP } from '../../lib/broker/redis/presence-scripts.js'
import { defineScripts } from '../../lib/broker/redis/scripts.js'
import type { User } from '../../lib/protocol/wire.js'
import type { RecordingNode } from '../helpers/broker-conformance.js'
import { eventually } from '../helpers/eventually.js'
import { everyone } from '../helpers/presence.js'
import { adminClient, redisNode, startRedis } from '../helpers/redis.js'
import type { RedisServer } from '../helpers/redis.js'

const alice: User = { id: 'alice-id', name: 'alice' }
const bob: User = { id: 'bob-id', name: 'bob' }
const carol: User = { id: 'carol-id', name: 'carol' }

const KEYS = new RedisKeys('fastify-chat').presence('lobby')

async function names (presence: Presence, room = 'lobby'): Promise<string[]> {
  return (await everyone(presence, room, 1000)).users.map((u) => u.name).sort()
}

/** Two servers on one fresh Redis whose heartbeats never lapse in a test. */
type Server = Awaited<ReturnType<typeof redisNode>>

/** Servers A and B on a fresh Redis, and a client to inspect it; by default their heartbeats never lapse within a test. */
async function twoServers (t: Test, ttlA = 600_000, ttlB = ttlA): Promise<{ redis: RedisServer, admin: Admin, a: Server, b: Server }> {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  return { redis, admin, a: await redisNode(t, redis, { presenceTtlMs: ttlA }), b: await redisNode(t, redis, { presenceTtlMs: ttlB }) }
}

/** The next presence event that is not a `skipped` one (those of a setup, say). */
async function eventNot (node: RecordingNode, skipped: PresenceEvent['event']): Promise<PresenceEvent> {
  for (let i = 0; i < 10_000; i++) {
    const event = await node.event()
    if (event.event !== skipped) return event
  }
  throw new Error(`only ${skipped} events`)
}

async function expectEvent (t: Test, node: RecordingNode, event: 'join' | 'leave' | 'rename', user: User, count: number, what = `${event} ${user.name}`): Promise<void> {
  t.strictSame(await node.event(), { room: 'lobby', event, user, count }, what)
}

type Admin = ReturnType<typeof adminClient>

/** A member's digest, as the presence scripts compute it. */
function digest (id: string): number {
  return Number.parseInt(createHash('sha1').update(id).digest('hex').slice(0, 7), 16)
}

/**
 * What a server that crashed leaves behind in the lobby: its heartbeat at
 * `expiry` and its members, laid out as the presence scripts lay them out.
 */
async function plant (admin: Admin, server: string, users: User[], expiry: number): Promise<void> {
  const tx = admin.multi().zadd(KEYS.serversKey, String(expiry), server)
  for (const user of users) {
    tx.zadd(`${KEYS.serverPrefix}${server}`, 0, user.id).hincrby(KEYS.digestsKey, server, digest(user.id)).hincrby(KEYS.refsKey, user.id, 1)
      .zadd(KEYS.usersKey, 0, user.id).hsetnx(KEYS.namesKey, user.id, user.name)
  }
  await tx.exec()
}

/** Takes `user`'s member on `server` out of the lobby, as Redis losing it would: nobody is told. */
async function lose (admin: Admin, server: string, user: User): Promise<void> {
  await admin.multi().zrem(`${KEYS.serverPrefix}${server}`, user.id).hincrby(KEYS.digestsKey, server, -digest(user.id))
    .hdel(KEYS.refsKey, user.id).hdel(KEYS.namesKey, user.id).zrem(KEYS.usersKey, user.id).exec()
}

/** The id of the server holding `user`'s member in the lobby. */
async function serverOf (admin: Admin, user: User): Promise<string> {
  for (const server of await admin.zrange(KEYS.serversKey, '0', '-1')) {
    if (await admin.zscore(`${KEYS.serverPrefix}${server}`, user.id) !== null) return server
  }
  throw new Error(`${user.name} has no member`)
}

function many (prefix: string, count: number): User[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${String(i).padStart(5, '0')}`, name: `${prefix} ${i}` }))
}

async function joinAll (presence: Presence, room: string, users: User[]): Promise<void> {
  for (let i = 0; i < users.length; i += 500) await Promise.all(users.slice(i, i + 500).map(async (user) => await presence.join(room, user)))
}

t.test('a user is announced when first present anywhere, and gone when gone everywhere, with the count', async (t) => {
  const { a, b } = await twoServers(t)
  for (const { adapter } of [a, b]) await adapter.broker.subscribe('lobby')

  await a.adapter.presence.join('lobby', { ...alice, extra: 'not sent' } as User)
  await expectEvent(t, a.node, 'join', alice, 1)
  await expectEvent(t, b.node, 'join', alice, 1, 'another server sees the join, with only id and name')

  // Alice's second device, on the other server: she was present already.
  await b.adapter.presence.join('lobby', alice)
  await b.adapter.presence.join('lobby', bob)
  await expectEvent(t, a.node, 'join', bob, 2, 'bob is next: alice was not announced twice')
  await expectEvent(t, b.node, 'join', bob, 2)
  t.strictSame(await names(a.adapter.presence), ['alice', 'bob'], 'each user once, whatever the servers')
  t.equal(await b.adapter.presence.count('lobby'), 2)
  t.strictSame(await names(b.adapter.presence, 'other-room'), [])
  t.equal(await b.adapter.presence.count('other-room'), 0)

  await a.adapter.presence.leave('lobby', alice)
  await b.adapter.presence.leave('lobby', bob)
  await expectEvent(t, a.node, 'leave', bob, 1, 'bob is next: alice is still there through the other server')
  t.strictSame(await names(a.adapter.presence), ['alice'])
  t.equal(await a.adapter.presence.count('lobby'), 1)
  await b.adapter.presence.leave('lobby', alice)
  await expectEvent(t, a.node, 'leave', alice, 0, 'gone everywhere')
  t.strictSame(await names(a.adapter.presence), [])
})

t.test('a rename is announced with the previous name, and listed', async (t) => {
  const { a, b } = await twoServers(t)
  await b.adapter.broker.subscribe('lobby')
  await a.adapter.presence.join('lobby', alice)
  await expectEvent(t, b.node, 'join', alice, 1)
  const renamed = { id: alice.id, name: 'alicia' }
  await a.adapter.presence.rename('lobby', renamed, 'alice')
  t.strictSame(await b.node.event(), { room: 'lobby', event: 'rename', user: renamed, previous: 'alice', count: 1 })
  t.strictSame(await names(b.adapter.presence), ['alicia'])
  await a.adapter.presence.leave('lobby', renamed)
  await expectEvent(t, b.node, 'leave', renamed, 0, 'the leave names her by her new name')
  t.strictSame(await names(b.adapter.presence), [])
})

t.test('paging a room covers every user once, in id order, and the last page has no next', async (t) => {
  const { a, b } = await twoServers(t)
  const users = many('user', 250)
  // Spread over two servers, with some users on both.
  await joinAll(a.adapter.presence, 'lobby', users.slice(0, 150))
  await joinAll(b.adapter.presence, 'lobby', users.slice(100))

  const seen: string[] = []
  let after: string | undefined
  let pages = 0
  for (; pages < 20; pages++) {
    const page = await b.adapter.presence.page('lobby', after === undefined ? { limit: 40 } : { limit: 40, after })
    t.equal(page.count, 250, `page ${pages + 1} counts every user`)
    seen.push(...page.users.map((u) => u.id))
    if (page.next === undefined) {
      t.equal(page.users.length, 250 % 40, 'the last page holds the rest')
      break
    }
    t.equal(page.users.length, 40, `page ${pages + 1} is full`)
    t.equal(page.next, page.users[page.users.length - 1].id, 'next is the page\'s last id')
    after = page.next
  }
  t.equal(pages + 1, 7, '250 users in pages of 40')
  t.strictSame(seen, users.map((u) => u.id), 'every user once, in id order')
  t.strictSame((await a.adapter.presence.page('lobby', { limit: 1, after: users[3].id })).users, [users[4]], 'names come with the ids')

  const full = await a.adapter.presence.page('lobby', { limit: 250 })
  t.equal(full.users.length, 250)
  t.equal(full.next, undefined, 'a page that ends with the last user has no next')

  // The user at the cursor leaves between two pages: paging goes on after them.
  const first = await a.adapter.presence.page('lobby', { limit: 10 })
  await a.adapter.presence.leave('lobby', users[9])
  const second = await a.adapter.presence.page('lobby', { limit: 10, after: first.next })
  t.equal(second.users[0].id, users[10].id, 'the next page starts after the cursor, though its user left')
  t.equal(second.count, 249)
  t.equal(await a.adapter.presence.count('lobby'), 249)
})

t.test('counts stay right across two servers, two tabs of one user, a crash sweep and a Redis restart', async (t) => {
  // Long enough that a busy machine's late timers do not let a heartbeat lapse.
  const { redis, admin, a, b } = await twoServers(t, 3000)
  await b.adapter.broker.subscribe('lobby')
  const counts = async (): Promise<number[]> => [await a.adapter.presence.count('lobby'), await b.adapter.presence.count('lobby')]

  // Alice has a tab on each server; A also holds 520 others (two restore slices).
  const others = many('a-user', 520)
  await a.adapter.presence.join('lobby', alice)
  await b.adapter.presence.join('lobby', alice)
  await b.adapter.presence.join('lobby', bob)
  await joinAll(a.adapter.presence, 'lobby', others)
  t.strictSame(await counts(), [522, 522], 'alice counts once')

  // A crashed server's members: carol, and a second tab of bob.
  await plant(admin, 'crashed-server', [carol, bob], Date.now() + 300)
  t.strictSame(await counts(), [523, 523])
  t.strictSame(await eventNot(b.node, 'join'), { room: 'lobby', event: 'leave', user: carol, count: 522 }, 'the sweep announces carol gone, bob stays through B')
  t.strictSame(await counts(), [522, 522])

  await a.adapter.presence.leave('lobby', alice)
  t.strictSame(await counts(), [522, 522], 'alice\'s tab on B keeps her')

  admin.on('error', () => {})
  await redis.restart()
  const took = await eventually(async () => (await counts()).join() === '522,522', 10_000, 'counts back after the restart')
  t.comment(`counts back ${took} ms after the restart`)
  t.strictSame((await everyone(b.adapter.presence, 'lobby', 1000)).users.map((u) => u.id).sort(), [alice, bob, ...others].map((u) => u.id).sort(), 'each user once')
})

t.test('a dead server\'s users expire and are announced gone once; live ones are kept alive', async (t) => {
  const ttl = 1200
  const { admin, a, b } = await aliceOnABobOnB(t, ttl, ttl)
  await plant(admin, 'crashed-server', [carol], Date.now() + ttl)
  t.strictSame(await names(a.adapter.presence), ['alice', 'bob', 'carol'])

  // Both servers sweep the room; exactly one announces her.
  await expectEvent(t, a.node, 'leave', carol, 2)
  await expectEvent(t, b.node, 'leave', carol, 2)
  t.strictSame(await names(b.adapter.presence), ['alice', 'bob'], 'alice and bob joined before carol\'s expiry, and are still there')
  t.strictSame(await admin.zrange(KEYS.goneKey, '0', '-1'), ['crashed-server'], 'the crashed server is tombstoned')
  t.notOk(await admin.zscore(KEYS.serversKey, 'crashed-server'), 'and has no heartbeat left')
  await a.adapter.presence.leave('lobby', alice)
  for (const { node } of [a, b]) await expectEvent(t, node, 'leave', alice, 1, 'the next event: carol was announced once')
})

t.test('a dead server\'s members are swept in slices of at most 200, and no more once it is back', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const runner = new Redis(redis.url)
  t.teardown(() => runner.disconnect())
  defineScripts(runner)
  const members = many('dead', 1000)
  await plant(admin, 'dead-server', members, Date.now() - 1)
  await plant(admin, 'live-server', [alice], Date.now() + 600_000)
  const sweep = async (): Promise<[number, number]> => await runScript(runner, SWEEP, KEYS, {
    now: Date.now(), goneKeptMs: 60_000, channel: 'fastify-chat:{lobby}:ch', room: 'lobby', publishCmd: 'PUBLISH'
  })

  t.strictSame(await sweep(), [200, 1], 'one slice, and more is left')
  t.equal(await admin.zcard(KEYS.usersKey), 801, 'a slice took 200 users out')
  t.strictSame(await sweep(), [200, 1])
  // The server was only paused: its heartbeat is back.
  await admin.zadd(KEYS.serversKey, String(Date.now() + 600_000), 'dead-server')
  t.strictSame(await sweep(), [0, 0], 'a server alive again is swept no more')
  t.equal(await admin.zcard(KEYS.usersKey), 601)
  t.ok(await admin.zscore(KEYS.goneKey, 'dead-server'), 'its tombstone tells its refresh that what it lacks was announced gone')

  await admin.zadd(KEYS.serversKey, String(Date.now() - 1), 'dead-server')
  await admin.config('RESETSTAT')
  let calls = 0
  for (let more = 1; more === 1 && calls < 100; calls++) {
    const [removed, left] = await sweep()
    t.ok(removed <= 200, `call ${calls + 1} took ${removed} members out`)
    more = left
  }
  t.equal(calls, 3, 'the 600 left took three calls')
  const stats = /cmdstat_evalsha:calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/.exec(await admin.info('commandstats'))
  t.equal(Number(stats?.[1]), 3, 'Redis ran three scripts')
  t.comment(`each sweep call ran ${stats?.[2]} µs in Redis, on average`)
  t.ok(Number(stats?.[2]) < 20_000, 'none for long')
  t.equal(await admin.zcard(KEYS.usersKey), 1, 'only the live server\'s user is left')
  t.equal(await admin.exists(`${KEYS.serverPrefix}dead-server`), 0)
  t.notOk(await admin.zscore(KEYS.serversKey, 'dead-server'))
  t.equal(await admin.hlen(KEYS.refsKey), 1, 'the refs of users gone are gone')
  t.equal(await admin.hlen(KEYS.namesKey), 1)
})

t.test('a page waits for the sweep of a dead server, slice by slice, and each leave carries the count', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const { adapter, node } = await redisNode(t, redis, { presenceTtlMs: 600_000 })
  await adapter.broker.subscribe('lobby')
  await adapter.presence.join('lobby', alice)
  await expectEvent(t, node, 'join', alice, 1)
  await plant(admin, 'dead-server', many('dead', 1000), Date.now() - 1)
  await admin.config('RESETSTAT')
  const page = await adapter.presence.page('lobby', { limit: 10 })
  t.strictSame(page, { users: [alice], count: 1 }, 'the page lists nobody whose leave is still to come')
  // Only a sweep slice reads a server's members with ZRANGE (200 at most):
  // five reads mean five slices.
  const slices = Number(/cmdstat_zrange:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1])
  t.equal(slices, 1000 / 200, 'the 1,000 members went in five slices')
  const counts: number[] = []
  for (let i = 0; i < 1000; i++) {
    const event = await node.event()
    if (event.event !== 'leave') throw new Error(`a ${event.event}`)
    counts.push(event.count)
  }
  t.strictSame(counts, Array.from({ length: 1000 }, (_, i) => 1000 - i), 'every leave tells the count after it')
})

t.test('a join costs the same in a room of 5,000 as in a room of 10', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const { adapter } = await redisNode(t, redis, { presenceTtlMs: 600_000 })
  const presence = adapter.presence
  await joinAll(presence, 'small', many('small', 10))
  await joinAll(presence, 'big', many('big', 5000))

  // Microseconds of Redis time per script call for 100 joins and their leaves.
  const cost = async (room: string, round: number): Promise<number> => {
    const users = many(`${room}-${round}`, 100)
    await admin.config('RESETSTAT')
    await Promise.all(users.map(async (user) => await presence.join(room, user)))
    await Promise.all(users.map(async (user) => await presence.leave(room, user)))
    const stats = await admin.info('commandstats')
    return Number(/cmdstat_evalsha:.*usec_per_call=([\d.]+)/.exec(stats)?.[1])
  }
  // Alternating rounds, keeping each room's best: a busy machine slows some
  // rounds, not the work a join does.
  const best = { small: Infinity, big: Infinity }
  for (let round = 0; round < 5; round++) {
    best.small = Math.min(best.small, await cost('small', round))
    best.big = Math.min(best.big, await cost('big', round))
  }
  t.comment(`µs per join or leave: ${best.small} in a room of 10, ${best.big} in a room of 5,000`)
  t.ok(best.small > 0 && best.big > 0, 'Redis counted the calls')
  t.ok(best.big < best.small * 3, 'no more than 3 times the cost')
  t.equal(await presence.count('big'), 5000)
})

t.test('closing takes the server\'s users out at once', async (t) => {
  const { a, b } = await twoServers(t)
  await b.adapter.broker.subscribe('lobby')
  await a.adapter.presence.join('lobby', alice)
  await a.adapter.presence.join('other', carol)
  await b.adapter.presence.join('lobby', bob)
  await expectEvent(t, b.node, 'join', alice, 1)
  await expectEvent(t, b.node, 'join', bob, 2)
  await a.adapter.close()
  await expectEvent(t, b.node, 'leave', alice, 1)
  t.strictSame(await names(b.adapter.presence), ['bob'])
  t.strictSame(await names(b.adapter.presence, 'other'), [], 'in every room')
})

/** Servers A and B on one Redis, listening to the lobby, with alice present through A and bob through B. */
async function aliceOnABobOnB (t: Test, ttlA: number, ttlB: number): Promise<{ admin: Admin, a: Server, b: Server }> {
  const { admin, a, b } = await twoServers(t, ttlA, ttlB)
  for (const { adapter } of [a, b]) await adapter.broker.subscribe('lobby')
  await a.adapter.presence.join('lobby', alice)
  await b.adapter.presence.join('lobby', bob)
  for (const { node } of [a, b]) {
    await expectEvent(t, node, 'join', alice, 1)
    await expectEvent(t, node, 'join', bob, 2)
  }
  return { admin, a, b }
}

// A refreshes only when its connection comes back; B sweeps every half
// second, and its members outlive the reconnect a test forces.
const A_TTL = 600_000
const B_TTL = 3000

t.test('members Redis lost are added back by the next refresh, with a join only where a list lacked them', async (t) => {
  const { admin, a, b } = await aliceOnABobOnB(t, A_TTL, A_TTL)
  t.strictSame((await a.adapter.presence.page('lobby', { limit: 10 }, true)).users.map((u) => u.name), ['alice', 'bob'], 'A hands out a list with both')
  await admin.flushall()
  t.strictSame(await names(a.adapter.presence), [], 'a look at the list, which nobody is handed')
  t.strictSame((await b.adapter.presence.page('lobby', { limit: 10 }, true)).users, [], 'B hands out a list without them (a reset joined, say)')

  // Both connections come back, and both servers refresh at once.
  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  const restored = [await b.node.event(), await b.node.event()]
  t.strictSame(restored.map((e) => e.user.name).sort(), ['alice', 'bob'], 'B\'s members are told of both')
  t.strictSame(restored.map((e) => e.count).sort(), [1, 2], 'each with the count after it')
  const took = await eventually(async () => (await names(a.adapter.presence)).join() === 'alice,bob', 1000, 'alice and bob listed again')
  t.comment(`listed again ${took} ms after B heard of both`)
  await a.adapter.presence.join('lobby', carol)
  await expectEvent(t, a.node, 'join', carol, 3, 'A\'s members, whose list had both, get no join for them')
  await expectEvent(t, b.node, 'join', carol, 3)
})

t.test('a member swept out while its server heard nothing is announced again, to the other servers', async (t) => {
  const { admin, a, b } = await aliceOnABobOnB(t, A_TTL, B_TTL)
  // What a sweep leaves while A is cut off: alice out, A tombstoned, her leave published where A did not hear it.
  const server = await serverOf(admin, alice)
  await lose(admin, server, alice)
  await admin.zadd(KEYS.goneKey, String(Date.now()), server)

  // A's connection comes back: its refresh runs at once.
  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  await expectEvent(t, b.node, 'join', alice, 2, 'B\'s members are told alice is back')
  // A's connection is back (its refresh ran); B's may still be coming back.
  t.strictSame(await names(a.adapter.presence), ['alice', 'bob'])
  t.equal(await admin.zscore(KEYS.goneKey, server), null, 'the tombstone is used up')
  await a.adapter.presence.join('lobby', carol)
  await expectEvent(t, a.node, 'join', carol, 3, 'A\'s members, who never saw alice leave, get no join for her')
  await expectEvent(t, b.node, 'join', carol, 3)
})

t.test('a live server\'s member swept while Redis stalled is announced gone and back, to every server', async (t) => {
  const { admin, a, b } = await aliceOnABobOnB(t, A_TTL, B_TTL)
  // A's refresh did not run in time: B's sweep finds A's heartbeat expired.
  await admin.zadd(KEYS.serversKey, 'XX', String(Date.now() - 1), await serverOf(admin, alice))
  for (const { node } of [a, b]) await expectEvent(t, node, 'leave', alice, 1)
  t.strictSame(await names(b.adapter.presence), ['bob'])

  await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  for (const { node } of [a, b]) await expectEvent(t, node, 'join', alice, 2, 'every server\'s members saw the leave, so every one gets the join')
  t.strictSame(await names(a.adapter.presence), ['alice', 'bob'])
})

t.test('a member Redis holds for a server that no longer has it (a leave whose answer was lost) goes at the next refresh', async (t) => {
  const { admin, a, b } = await twoServers(t, 1500, 600_000)
  await b.adapter.broker.subscribe('lobby')
  await a.adapter.presence.join('lobby', alice)
  await expectEvent(t, b.node, 'join', alice, 1)
  // Carol's leave ran nowhere: Redis still has her as A's, though A let her go.
  await plant(admin, await serverOf(admin, alice), [carol], Date.now() + 1000)
  await expectEvent(t, b.node, 'leave', carol, 1, 'A\'s refresh finds one member too many, and takes her out')
  t.strictSame(await names(b.adapter.presence), ['alice'])

  // As many as two pages of its members (500 each).
  const stale = many('stale', 700)
  await plant(admin, await serverOf(admin, alice), stale, Date.now() + 1000)
  const gone: string[] = []
  for (let i = 0; i < stale.length; i++) gone.push((await eventNot(b.node, 'join')).user.id)
  t.strictSame(gone.sort(), stale.map((u) => u.id), 'each stale member is taken out, and announced gone once')
  t.strictSame(await names(b.adapter.presence), ['alice'])
})

t.test('a server whose members in Redis are as many as it holds, but not the same, is healed at the next refresh', async (t) => {
  const { admin, a, b } = await twoServers(t, 1500, 600_000)
  await b.adapter.broker.subscribe('lobby')
  await a.adapter.presence.join('lobby', alice)
  await a.adapter.presence.join('lobby', bob)
  await expectEvent(t, b.node, 'join', alice, 1)
  await expectEvent(t, b.node, 'join', bob, 2)
  // Redis lost bob, and holds carol for A, who let her go: still two members.
  const server = await serverOf(admin, alice)
  await lose(admin, server, bob)
  await plant(admin, server, [carol], Date.now() + 1000)
  t.equal(await admin.zcard(`${KEYS.serverPrefix}${server}`), 2)
  await expectEvent(t, b.node, 'leave', carol, 2, 'A\'s refresh tells its members apart, and takes carol out')
  t.strictSame(await names(b.adapter.presence), ['alice', 'bob'], 'and bob is back')
  t.equal(Number(await admin.hget(KEYS.digestsKey, server)), digest(alice.id) + digest(bob.id), 'the digest is A\'s again')
})

t.test('a user whose member expired but is not swept yet is still present: a join elsewhere is not announced', async (t) => {
  const { admin, a, b } = await twoServers(t)
  await b.adapter.broker.subscribe('lobby')
  await plant(admin, 'crashed-server', [alice], Date.now() - 1)
  await a.adapter.presence.join('lobby', alice)
  await a.adapter.presence.join('lobby', bob)
  await expectEvent(t, b.node, 'join', bob, 2, 'alice was never announced gone, so her join is not news')
  t.strictSame(await names(b.adapter.presence), ['alice', 'bob'], 'the page sweeps the dead server; alice stays through A')
  t.equal(await admin.zcard(`${KEYS.serverPrefix}crashed-server`), 0)
  await a.adapter.presence.leave('lobby', alice)
  await expectEvent(t, b.node, 'leave', alice, 1, 'one leave, when she is gone everywhere')
})
