// The plugin end to end on a real Redis Cluster of three masters: two
// instances, real ws clients, rooms on each master.
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { Cluster } from 'ioredis'
import type { Redis } from 'ioredis'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat, { redisAdapter } from '../../index.js'
import type { RedisAdapterOptions } from '../../index.js'
import { Client, join } from '../helpers/chat.js'
import { startRedisCluster } from '../helpers/redis-cluster.js'

interface Node { app: FastifyInstance, url: string }

const cluster = await startRedisCluster(t)
const admins = cluster.clients()
t.teardown(() => { for (const admin of admins) admin.disconnect() })

// Each subtest has a prefix of its own on the one cluster.
let chats = 0

async function node (t: Test, prefix: string, adapter: Partial<RedisAdapterOptions> = {}): Promise<Node> {
  const app = Fastify()
  await app.register(fastifyChat, {
    presenceGraceMs: 0,
    adapter: redisAdapter({ ...(adapter.client === undefined ? { cluster: cluster.nodes } : {}), prefix, presenceTtlMs: 600, ...adapter } as RedisAdapterOptions)
  })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

/** Two instances of a chat of its own on the cluster. */
async function pair (t: Test, adapter: Partial<RedisAdapterOptions> = {}): Promise<{ prefix: string, a: Node, b: Node }> {
  const prefix = `chat${++chats}`
  return { prefix, a: await node(t, prefix, adapter), b: await node(t, prefix, adapter) }
}

/** The node (its admin client) that serves `key`'s slot. */
async function ownerOf (key: string): Promise<Redis> {
  const slot = await admins[0].cluster('KEYSLOT', key) as number
  const ranges = await admins[0].cluster('SLOTS')
  const range = ranges.find(([from, to]) => slot >= from && slot <= to)
  const owner = admins.find((admin) => admin.options.port === range?.[2][1])
  if (owner === undefined) throw new Error(`no node serves slot ${slot}`)
  return owner
}

/** One room per master, by the slot of its channel: the first names found that land on each. */
async function roomPerMaster (prefix: string): Promise<Array<{ room: string, channel: string, owner: Redis }>> {
  const found = new Map<Redis, { room: string, channel: string, owner: Redis }>()
  for (let i = 0; i < 200 && found.size < admins.length; i++) {
    const room = `room-${i}`
    const channel = `${prefix}:{${room}}:ch`
    const owner = await ownerOf(channel)
    if (!found.has(owner)) found.set(owner, { room, channel, owner })
  }
  if (found.size !== admins.length) throw new Error('no room found for some master')
  return [...found.values()]
}

async function joinRoom (client: Client, room: string): Promise<void> {
  client.send({ type: 'join', room })
  for (;;) {
    const frame = await client.next(`joined ${room}`)
    if (frame.type === 'joined' && frame.room === room) return
  }
}

/** The next `count` messages at `client`, with their rooms; other frames are skipped. */
async function roomMessages (client: Client, count: number): Promise<Array<{ room: string, offset: number, text: string }>> {
  const out: Array<{ room: string, offset: number, text: string }> = []
  while (out.length < count) {
    const frame = await client.next('a message')
    if (frame.type === 'message') out.push({ room: frame.room, offset: frame.offset, text: frame.text })
  }
  return out
}

/** The next presence event at `client` in `room`; other frames are skipped. */
async function presenceIn (client: Client, room: string): Promise<{ event: string, user: { name: string } }> {
  for (;;) {
    const frame = await client.next(`presence in ${room}`)
    if (frame.type === 'presence' && frame.room === room) return frame
  }
}

t.test('rooms on each of the three masters: messages from both instances reach both, in one order, over their own shard', async (t) => {
  const { prefix, a, b } = await pair(t)
  const rooms = await roomPerMaster(prefix)
  t.equal(new Set(rooms.map(({ owner }) => owner.options.port)).size, 3, 'three rooms on three masters')
  const alice = await join(a.url, '?name=alice')
  const bob = await join(b.url, '?name=bob')
  for (const { room } of rooms) {
    await joinRoom(alice, room)
    await joinRoom(bob, room)
  }
  for (const { channel, owner } of rooms) {
    t.strictSame(await owner.pubsub('SHARDNUMSUB', channel), [channel, 2], `both instances listen to ${channel} on the master that owns it`)
  }
  const SENDS = 5
  for (let i = 0; i < SENDS; i++) {
    for (const { room } of rooms) {
      alice.send({ type: 'message', room, text: `alice-${i}` })
      bob.send({ type: 'message', room, text: `bob-${i}` })
    }
  }
  const total = rooms.length * SENDS * 2
  const [atAlice, atBob] = await Promise.all([alice, bob].map(async (client) => await roomMessages(client, total)))
  for (const { room } of rooms) {
    const here = atAlice.filter((m) => m.room === room)
    t.strictSame(here.map((m) => m.offset), Array.from({ length: SENDS * 2 }, (_, i) => i + 1), `${room}: offsets consecutive across instances`)
    t.strictSame(atBob.filter((m) => m.room === room), here, `${room}: the same messages in the same order at both`)
    for (const sender of ['alice', 'bob']) {
      t.strictSame(here.filter((m) => m.text.startsWith(sender)).map((m) => m.text), Array.from({ length: SENDS }, (_, i) => `${sender}-${i}`), `${room}: ${sender}'s in the order sent`)
    }
  }
  alice.send({ type: 'message', room: rooms[0].room, text: 'marker' })
  for (const client of [alice, bob]) t.equal((await roomMessages(client, 1))[0].text, 'marker', 'nothing else arrived')
})

t.test('history and since recovery are served by the other instance', async (t) => {
  const { prefix, a, b } = await pair(t)
  const [, { room }] = await roomPerMaster(prefix)
  const alice = await join(a.url, '?name=alice')
  alice.send({ type: 'join', room })
  const { epoch } = await alice.expect('joined')
  alice.send({ type: 'message', room, text: 'one' })
  const [one] = await roomMessages(alice, 1)
  alice.close()
  await alice.closed
  await b.app.chat.broadcast(room, 'two')
  await b.app.chat.broadcast(room, 'three')
  const back = await join(b.url, '?name=alice')
  back.send({ type: 'join', room, since: { epoch, offset: one.offset } })
  const joined = await back.expect('joined')
  t.equal(joined.recovered, true, 'recovered on the other instance')
  t.strictSame(joined.history.map((m) => m.text), ['two', 'three'], 'exactly the messages missed')
  t.strictSame((await a.app.chat.history(room)).map((m) => m.text), ['one', 'two', 'three'], 'one history for both instances')
  const older = await a.app.chat.history(room, { before: 3, limit: 1 })
  t.strictSame([older.messages.map((m) => m.text), older.more, older.epoch], [['two'], true, epoch], 'paged back on the room\'s shard')
})

t.test('presence: joins, leaves and the count across instances', async (t) => {
  const { prefix, a, b } = await pair(t)
  const [, , { room }] = await roomPerMaster(prefix)
  const alice = await join(a.url, '?name=alice')
  const bob = await join(b.url, '?name=bob')
  await joinRoom(alice, room)
  bob.send({ type: 'join', room })
  const joined = await bob.expect('joined')
  t.equal(joined.count, 2, 'the joiner is told both')
  t.match(await presenceIn(alice, room), { event: 'join', user: { name: 'bob' } }, 'the join reaches the other instance')
  t.equal(await a.app.chat.occupancy(room), 2)
  t.equal(await b.app.chat.occupancy(room), 2)
  bob.send({ type: 'leave', room })
  t.match(await presenceIn(alice, room), { event: 'leave', user: { name: 'bob' } }, 'and the leave')
  t.equal(await a.app.chat.occupancy(room), 1)
  t.equal(await b.app.chat.occupancy(room), 1)
})

t.test('moderation: app.chat.disconnect on one instance closes the user\'s socket on the other', async (t) => {
  const { a, b } = await pair(t)
  const bob = await Client.connect(b.url, '/chat?name=bob')
  const { id } = await bob.expect('welcome')
  t.equal(await a.app.chat.disconnect({ userId: id }, { reason: 'bye' }), 0, 'no socket of bob here')
  t.strictSame(await bob.closed, { code: 4000, reason: 'bye' }, 'closed there, with the reason')
})

t.test('a Cluster client handed in, on plain PUBLISH: delivers across instances, and stays open', async (t) => {
  const prefix = `chat${++chats}`
  const client = new Cluster(cluster.nodes)
  t.teardown(() => client.disconnect())
  const a = await node(t, prefix, { client, shardedPubSub: false })
  const b = await node(t, prefix, { shardedPubSub: false })
  const rooms = await roomPerMaster(prefix)
  const alice = await join(a.url, '?name=alice')
  const bob = await join(b.url, '?name=bob')
  for (const { room } of rooms) {
    await joinRoom(alice, room)
    await joinRoom(bob, room)
  }
  for (const { channel, owner } of rooms) t.strictSame(await owner.pubsub('SHARDNUMSUB', channel), [channel, 0], `${channel}: no sharded subscriber`)
  for (const { room } of rooms) alice.send({ type: 'message', room, text: `to ${room}` })
  const atBob = await roomMessages(bob, rooms.length)
  t.strictSame(atBob.map((m) => m.text).sort(), rooms.map(({ room }) => `to ${room}`).sort(), 'every room delivered on the other instance')
  await a.app.close()
  t.equal(await client.ping(), 'PONG', 'the client is still open')
})
