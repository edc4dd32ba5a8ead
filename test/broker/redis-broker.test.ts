// The Redis broker between several servers (adapters) on one real redis-server.
import Fastify from 'fastify'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import type { Test } from 'tap'
import { RedisAdapter } from '../../lib/broker/redis/redis-adapter.js'
import { RecordingNode, message } from '../helpers/broker-conformance.js'
import { within } from '../helpers/chat.js'
import { adapterEvent, adminClient, redisNode, startRedis } from '../helpers/redis.js'

async function texts (node: RecordingNode, count: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < count; i++) out.push((await node.delivery()).message.text)
  return out
}

/**
 * Drops `adapter`'s subscriber connection and keeps it from reconnecting
 * (Redis refuses new clients) until the returned function is called: a
 * window in which pub/sub cannot reach it, as in a network split. The
 * adapter's subscriber must be the only client subscribed to a room (named `name`, if given).
 */
async function cutSubscriber (t: Test, admin: Redis, adapter: RedisAdapter, room: string, name?: string): Promise<() => Promise<void>> {
  const clients = (await admin.client('LIST') as string).trim().split('\n')
  const subscribed = []
  for (const line of clients) {
    const id = /\bid=(\d+)/.exec(line)?.[1]
    // Every server's subscriber listens to the control channel (plain), the one cut to a room too (sharded, on Redis 7).
    const rooms = Number(/\bsub=(\d+)/.exec(line)?.[1] ?? 0) - 1 + Number(/\bssub=(\d+)/.exec(line)?.[1] ?? 0)
    if (rooms > 0 && id !== undefined && (name === undefined || line.includes(` name=${name} `))) subscribed.push(id)
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

/** A logger, and the next line it logs matching `pattern` at `level`; start waiting before acting. */
function watchedLog (): { log: FastifyBaseLogger, line: (level: number, pattern: RegExp) => Promise<Record<string, unknown>> } {
  let watchers: Array<(line: { level: number, msg: string }) => boolean> = []
  const app = Fastify({
    logger: {
      level: 'info',
      stream: { write: (text: string) => { const line = JSON.parse(text); watchers = watchers.filter((watch) => !watch(line)) } }
    }
  })
  return {
    log: app.log,
    line: async (level, pattern) => await within(new Promise((resolve) => {
      watchers.push((line) => {
        if (line.level !== level || !pattern.test(line.msg)) return false
        resolve(line)
        return true
      })
    }), 10_000, `a log line ${String(pattern)}`)
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
  t.strictSame(a.node.resets, [], 'a gap the stream fills is no reset')
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
  t.same(await admin.pubsub('SHARDNUMSUB', 'fastify-chat:{left}:ch'), ['fastify-chat:{left}:ch', 0], 'no longer subscribed in Redis')
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
  t.strictSame(await a.node.delivery().then((d) => [d.message.text, d.afterResets]), ['after the flush', 1], 'delivered after a reset')
  t.strictSame(a.node.resets, ['lobby'])
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

t.test('Redis restarted without persistence: every subscribed room is reset, then delivers under the new epoch', async (t) => {
  const redis = await startRedis(t)
  const a = await redisNode(t, redis)
  await a.adapter.broker.subscribe('lobby')
  await a.adapter.broker.subscribe('quiet')
  await a.adapter.broker.publish(message('lobby', 'before'), null)
  const { epoch } = await a.adapter.broker.recent('lobby', 0)
  t.equal((await a.node.delivery()).message.text, 'before')

  await redis.restart()
  // The gap-fill finds the new epochs once both connections are back; the
  // quiet room had nothing delivered, but its members hold the old epoch too.
  t.strictSame((await a.node.resetsUntil(2)).sort(), ['lobby', 'quiet'])
  const after = await a.adapter.broker.publish(message('lobby', 'after'), null)
  const delivered = await a.node.delivery()
  t.strictSame([delivered.message, delivered.afterResets], [after.message, 2], 'then live delivery, from offset 1')
  t.equal(after.message.offset, 1)
  t.not((await a.adapter.broker.recent('lobby', 0)).epoch, epoch)
  await a.adapter.broker.publish(message('quiet', 'marker'), null)
  t.equal((await a.node.delivery()).message.text, 'marker', 'nothing else arrived')
  t.equal(a.node.resets.length, 2, 'each room was reset once')
})

t.test('more missed than the stream keeps: the room is reset, not skipped silently', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const a = await redisNode(t, redis, {}, 3)
  const b = await redisNode(t, redis, {}, 3)
  await a.adapter.broker.subscribe('lobby')
  await b.adapter.broker.publish(message('lobby', 'before'), null)
  t.equal((await a.node.delivery()).message.text, 'before')

  const restore = await cutSubscriber(t, admin, a.adapter, 'lobby')
  for (let i = 1; i <= 5; i++) await b.adapter.broker.publish(message('lobby', `missed ${i}`), null)
  await restore()
  t.strictSame(a.node.resets, ['lobby'], 'reset before the subscriber counts as back')
  await b.adapter.broker.publish(message('lobby', 'live'), null)
  t.strictSame(await a.node.delivery().then((d) => [d.message.offset, d.message.text, d.afterResets]), [7, 'live', 1],
    'none of the missed ones came live: the reset replays what is kept')
})

t.test('a subscriber back before the commands connection fills the gap once both are ready', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  // A client of the test's own for commands, whose reconnect the test decides;
  // the adapter's subscriber, a duplicate of it, carries its name.
  const commands = new Redis(redis.url, { connectionName: 'slow-commands', enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  t.teardown(() => commands.disconnect())
  const node = new RecordingNode()
  const { log, line } = watchedLog()
  const a = new RedisAdapter({ client: commands })
  t.teardown(() => a.close())
  await a.start({ node, historySize: 100, log })
  const b = await redisNode(t, redis)
  await a.broker.subscribe('lobby')
  await b.adapter.broker.publish(message('lobby', 'before'), null)
  t.equal((await node.delivery()).message.text, 'before')

  const commandsDown = adapterEvent('down', 'commands')
  commands.disconnect()
  await commandsDown
  await cutSubscriber(t, admin, a, 'lobby', 'slow-commands')
  await b.adapter.broker.publish(message('lobby', 'missed'), null)
  const subscriberBack = line(30, /Redis is back/)
  // Not the restore cutSubscriber returns: the subscriber counts as back
  // only once it caught up, which needs the commands connection.
  await admin.config('SET', 'maxclients', '10000')
  t.match(await subscriberBack, { role: 'subscriber' })
  await b.adapter.broker.publish(message('lobby', 'live'), null)
  const caughtUp = adapterEvent('up', 'subscriber')
  await commands.connect()
  await caughtUp
  t.strictSame(await texts(node, 2), ['missed', 'live'], 'the gap first, then what pub/sub brought meanwhile')
  await b.adapter.broker.publish(message('lobby', 'marker'), null)
  t.strictSame(await texts(node, 1), ['marker'], 'each once')
  t.strictSame(node.resets, [])
})

t.test('a cid published again after the stream trimmed it is stored once, answered with the stored copy', async (t) => {
  const redis = await startRedis(t)
  const a = await redisNode(t, redis, {}, 2)
  const b = await redisNode(t, redis, {}, 2)
  await a.adapter.broker.subscribe('lobby')
  const first = await a.adapter.broker.publish(message('lobby', 'once', 'cid-trimmed'), null)
  for (let i = 1; i <= 3; i++) await a.adapter.broker.publish(message('lobby', `later ${i}`), null)
  t.notOk((await a.adapter.broker.recent('lobby', 10)).messages.some((m) => m.cid === 'cid-trimmed'), 'the stream no longer holds it')
  t.strictSame(await b.adapter.broker.publish(message('lobby', 'once', 'cid-trimmed'), null), { message: first.message, duplicate: true })
  t.equal((await a.adapter.broker.publish(message('lobby', 'next'), null)).message.offset, 5, 'no offset was taken')
  t.strictSame(await texts(a.node, 5), ['once', 'later 1', 'later 2', 'later 3', 'next'], 'nor anything delivered')
})

t.test('cids are remembered for a minute beyond the latest 256, then forgotten oldest first', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const a = await redisNode(t, redis, {}, 2)
  const [cids, cidMessages] = ['fastify-chat:{lobby}:cids', 'fastify-chat:{lobby}:cid-messages']
  for (let i = 0; i < 300; i++) await a.adapter.broker.publish(message('lobby', `m${i}`, `c${i}`), null)
  t.equal(await admin.hlen(cidMessages), 300, 'more than 256, all from the last minute, are kept')
  t.equal((await a.adapter.broker.publish(message('lobby', 'm0', 'c0'), null)).duplicate, true, 'the oldest is still known')
  // Ten of them stored long ago.
  await admin.zadd(cids, 'XX', ...Array.from({ length: 10 }, (_, i) => [0, `c${i}`]).flat())
  await a.adapter.broker.publish(message('lobby', 'm300', 'c300'), null)
  t.equal(await admin.hlen(cidMessages), 299, 'a publish forgets up to two expired ones')
  t.equal(await admin.zcard(cids), 299)
  t.equal(await admin.hexists(cidMessages, 'c0'), 0, 'the oldest went first')
  t.equal(await admin.hexists(cidMessages, 'c9'), 1)
  t.equal((await a.adapter.broker.publish(message('lobby', 'm299', 'c299'), null)).duplicate, true)
})

t.test('a hung Redis (DEBUG SLEEP): commands fail with FST_CHAT_ADAPTER_UNAVAILABLE within commandTimeoutMs', async (t) => {
  const redis = await startRedis(t, { debug: true })
  const admin = adminClient(t, redis)
  const a = await redisNode(t, redis, { commandTimeoutMs: 300 })
  // A client of the user's, without a commandTimeout of its own.
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  const theirs = new RedisAdapter({ client, commandTimeoutMs: 300 })
  t.teardown(() => theirs.close())
  await theirs.start({ node: new RecordingNode(), historySize: 10, log: Fastify().log })
  await a.adapter.broker.subscribe('lobby')
  await admin.ping()

  // Sent (and run by Redis) before anything the test sends next.
  const asleep = admin.call('DEBUG', 'SLEEP', '2')
  asleep.catch(() => {})
  const started = performance.now()
  const unavailable = { code: 'FST_CHAT_ADAPTER_UNAVAILABLE', message: /timed out|no answer within 300 ms/ }
  await Promise.all([
    t.rejects(a.adapter.broker.publish(message('lobby', 'hung', 'cid-hung'), null), unavailable, 'a publish'),
    t.rejects(a.adapter.broker.recent('lobby', 10), unavailable, 'a history read'),
    t.rejects(a.adapter.broker.subscribe('other'), unavailable, 'a subscribe'),
    t.rejects(theirs.broker.publish(message('elsewhere', 'theirs'), null), unavailable, 'a publish on a client handed in')
  ])
  const waited = performance.now() - started
  t.ok(waited >= 250 && waited < 1500, `failed after ${Math.round(waited)} ms, not after the 2 s sleep`)
  await asleep

  // Redis ran the publish once it woke: a resend with the cid gets that copy.
  const ran = await a.node.delivery()
  t.match(ran.message, { text: 'hung', cid: 'cid-hung', offset: 1 })
  t.strictSame(await a.adapter.broker.publish(message('lobby', 'hung', 'cid-hung'), null), { message: ran.message, duplicate: true })
})
