// The Redis adapter's options, connections and their lifecycle, on real redis-servers.
import Fastify from 'fastify'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { pubSubOf } from '../../lib/broker/redis/ioredis.js'
import { RedisAdapter, redisAdapter } from '../../lib/broker/redis/redis-adapter.js'
import type { RedisAdapterOptions } from '../../lib/broker/redis/redis-adapter.js'
import { RecordingNode, message } from '../helpers/broker-conformance.js'
import { within } from '../helpers/chat.js'
import { adapterEvent, adminClient, freePort, redisNode, startRedis } from '../helpers/redis.js'

/** A logger that keeps what it is given. */
function recordingLog (): { log: FastifyBaseLogger, lines: Array<{ level: number, msg: string, role?: string }> } {
  const lines: Array<{ level: number, msg: string, role?: string }> = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  return { log: app.log, lines }
}

t.test('bad options throw FST_CHAT_INVALID_OPTION at construction, naming the option and quoting the value', async (t) => {
  const url = 'redis://127.0.0.1:6379'
  const cases: Array<[unknown, RegExp]> = [
    [undefined, /option "redisAdapter" needs \{ url \}, \{ client \} or \{ cluster \}, got undefined/],
    ['redis://127.0.0.1', /option "redisAdapter" needs \{ url \}, \{ client \} or \{ cluster \}, got "redis:\/\/127\.0\.0\.1"/],
    [{}, /option "redisAdapter" needs exactly one of url, client and cluster/],
    [{ url, client: { status: 'wait' } }, /exactly one of url, client and cluster/],
    [{ url, cluster: [{ host: '127.0.0.1', port: 7000 }] }, /exactly one of url, client and cluster/],
    [{ cluster: [] }, /option "redisAdapter\.cluster" must be 1 to 64 nodes \{ host, port \} .*, got \[\]$/],
    [{ cluster: { host: '127.0.0.1', port: 7000 } }, /option "redisAdapter\.cluster" .*, got \{"host":"127\.0\.0\.1","port":7000\}$/],
    [{ cluster: ['127.0.0.1:7000'] }, /option "redisAdapter\.cluster" .*, got \["127\.0\.0\.1:7000"\]$/],
    [{ cluster: [{ host: '', port: 7000 }] }, /option "redisAdapter\.cluster"/],
    [{ cluster: [{ host: '127.0.0.1', port: 0 }] }, /option "redisAdapter\.cluster"/],
    [{ cluster: [{ host: '127.0.0.1', port: 65536 }] }, /option "redisAdapter\.cluster"/],
    [{ cluster: [{ host: '127.0.0.1', port: '7000' }] }, /option "redisAdapter\.cluster"/],
    [{ cluster: Array.from({ length: 65 }, (_, i) => ({ host: '127.0.0.1', port: 7000 + i })) }, /option "redisAdapter\.cluster" must be 1 to 64 nodes/],
    [{ url, shardedPubSub: 'yes' }, /option "redisAdapter\.shardedPubSub" must be a boolean, got "yes"$/],
    [{ url, shardedPubsub: true }, /did you mean "redisAdapter\.shardedPubSub"/],
    [{ url: '' }, /option "redisAdapter\.url" must be a redis:\/\/ or rediss:\/\/ URL.*, got ""$/],
    [{ url: 'localhost:6379' }, /option "redisAdapter\.url" .*, got "localhost:6379"$/],
    [{ url: 'http://127.0.0.1:6379' }, /option "redisAdapter\.url"/],
    [{ url: 'redis://' }, /option "redisAdapter\.url" .* with a host/],
    [{ url: 6379 }, /option "redisAdapter\.url" .*, got 6379$/],
    [{ client: {} }, /option "redisAdapter\.client" must be an ioredis client/],
    [{ url, prefix: '' }, /option "redisAdapter\.prefix" .*, got ""$/],
    [{ url, prefix: 'chat{1}' }, /option "redisAdapter\.prefix" must be a non-empty string without \{ or \}/],
    [{ url, presenceTtlMs: 1 }, /option "redisAdapter\.presenceTtlMs" must be an integer from 30 to 2147483647, got 1$/],
    [{ url, presenceTtlMs: '15000' }, /option "redisAdapter\.presenceTtlMs" .*, got "15000"$/],
    [{ url, connectTimeoutMs: 0 }, /option "redisAdapter\.connectTimeoutMs" must be an integer from 1 to 2147483647, got 0$/],
    [{ url, connectTimeoutMs: 1.5 }, /option "redisAdapter\.connectTimeoutMs" .*, got 1\.5$/],
    [{ url, connectTimeoutMs: '100' }, /option "redisAdapter\.connectTimeoutMs" .*, got "100"$/],
    [{ url, connectTimeout: 100 }, /option "redisAdapter\.connectTimeout" is not a known option \(did you mean "redisAdapter\.connectTimeoutMs"\?\)/],
    [{ url, commandTimeoutMs: 0 }, /option "redisAdapter\.commandTimeoutMs" must be an integer from 1 to 2147483647, got 0$/],
    [{ url, commandTimeoutMs: '2000' }, /option "redisAdapter\.commandTimeoutMs" .*, got "2000"$/],
    [{ url, commandTimeout: 2000 }, /did you mean "redisAdapter\.commandTimeoutMs"/]
  ]
  for (const [opts, msg] of cases) {
    t.throws(() => redisAdapter(opts as RedisAdapterOptions), { code: 'FST_CHAT_INVALID_OPTION', message: msg }, JSON.stringify(opts) ?? 'undefined')
  }
  // A password is not repeated in the message.
  t.throws(() => redisAdapter({ url: 'redis://:hunter2@' }), { message: /got "redis:\/\/\*\*\*@"$/ })
  t.throws(() => redisAdapter({ url: 'redis://u:hunter2@/0' }), { message: /got "redis:\/\/\*\*\*@\/0"$/ })
  t.doesNotThrow(() => redisAdapter({ url: 'rediss://user:secret@redis.example.com:6380/2', prefix: 'chat', presenceTtlMs: 30, connectTimeoutMs: 1, commandTimeoutMs: 1 }))
  t.doesNotThrow(() => redisAdapter({ cluster: [{ host: 'redis-a', port: 1 }, { host: 'redis-b', port: 65535 }], shardedPubSub: false }))
})

t.test('an unreachable Redis fails start with FST_CHAT_ADAPTER_UNAVAILABLE, by default well within Fastify\'s plugin timeout', async (t) => {
  const port = await freePort()
  const started = performance.now()
  const adapter = new RedisAdapter({ url: `redis://user:hunter2@127.0.0.1:${port}` })
  t.teardown(() => adapter.close())
  const failed = within(adapter.start({ node: new RecordingNode(), historySize: 10, log: Fastify().log }), 9000, 'start to fail')
  await t.rejects(failed, {
    code: 'FST_CHAT_ADAPTER_UNAVAILABLE',
    message: new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${port}: connect ECONNREFUSED .* \\(waited 5000 ms\\)`)
  }, 'names the URL without its password, and the cause')
  t.ok(performance.now() - started < 9000, 'before the 10 s plugin timeout')
  await t.rejects(adapter.broker.recent('lobby', 1), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' }, 'and is closed')
  await t.rejects(async () => { await adapter.start({ node: new RecordingNode(), historySize: 10, log: Fastify().log }) }, { message: /is closed/ })

  const quick = new RedisAdapter({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 50 })
  await t.rejects(quick.start({ node: new RecordingNode(), historySize: 10, log: Fastify().log }), { message: /waited 50 ms/ })
})

t.test('an unreachable cluster fails start with FST_CHAT_ADAPTER_UNAVAILABLE, naming its nodes', async (t) => {
  const ports = [await freePort(), await freePort()]
  const adapter = new RedisAdapter({ cluster: ports.map((port) => ({ host: '127.0.0.1', port })), connectTimeoutMs: 300 })
  t.teardown(() => adapter.close())
  const failed = within(adapter.start({ node: new RecordingNode(), historySize: 10, log: Fastify().log }), 5000, 'start to fail')
  await t.rejects(failed, {
    code: 'FST_CHAT_ADAPTER_UNAVAILABLE',
    message: new RegExp(`cannot reach Redis at the cluster at 127\\.0\\.0\\.1:${ports[0]}, 127\\.0\\.0\\.1:${ports[1]}: .*\\(waited 300 ms\\)`)
  })
  await t.rejects(adapter.broker.recent('lobby', 1), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' }, 'and is closed')
})

t.test('an adapter is started once, and refuses work before start and after close', async (t) => {
  const redis = await startRedis(t)
  const adapter = new RedisAdapter({ url: redis.url })
  await t.rejects(adapter.broker.recent('lobby', 1), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' }, 'before start')
  await t.rejects(adapter.secret(), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' })
  const context = { node: new RecordingNode(), historySize: 10, log: Fastify().log }
  await adapter.start(context)
  await t.rejects(async () => { await adapter.start(context) }, { code: 'FST_CHAT_ADAPTER_UNAVAILABLE', message: /started; give each app its own/ })
  await adapter.close()
  await adapter.close()
  await t.rejects(adapter.broker.publish(message('lobby'), null), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' }, 'after close')
  await t.rejects(adapter.presence.join('lobby', { id: 'u', name: 'u' }), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' })
  const never = new RedisAdapter({ url: redis.url })
  await t.resolves(async () => await never.close(), 'closing one never started is harmless')
})

t.test('a client handed in stays open and as it was; every server shares one secret', async (t) => {
  const redis = await startRedis(t)
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  const listeners = client.eventNames().map((name) => [name, client.listenerCount(name)])
  const mine = new RedisAdapter({ client })
  await mine.start({ node: new RecordingNode(), historySize: 10, log: Fastify().log })
  const other = await redisNode(t, redis)
  const secret = await mine.secret()
  t.match(secret, /^[\w-]{43}$/, '32 random bytes, base64url')
  t.equal(await other.adapter.secret(), secret, 'another server gets the same')
  t.equal(await mine.secret(), secret, 'and it stays')
  t.equal((await mine.broker.publish(message('lobby'), null)).message.offset, 1)
  await mine.close()
  t.equal(await client.ping(), 'PONG', 'the client is still open')
  t.strictSame(client.eventNames().map((name) => [name, client.listenerCount(name)]), listeners, 'with no listener of ours left')
})

t.test('Redis stopped and restarted: logged, reported per connection, unavailable while down, then delivering again', async (t) => {
  const redis = await startRedis(t)
  const { log, lines } = recordingLog()
  const node = new RecordingNode()
  const adapter = new RedisAdapter({ url: redis.url })
  t.teardown(() => adapter.close())
  await adapter.start({ node, historySize: 10, log })
  await adapter.broker.subscribe('lobby')
  await adapter.broker.publish(message('lobby', 'before'), null)
  t.equal((await node.delivery()).message.text, 'before')

  const down = Promise.all([adapterEvent('down', 'commands'), adapterEvent('down', 'subscriber')])
  await redis.stop()
  await down
  t.ok(lines.some((l) => l.level === 40 && l.role === 'subscriber' && /lost Redis/.test(l.msg)), 'a warning per connection')
  t.ok(lines.some((l) => l.level === 40 && l.role === 'commands' && /lost Redis/.test(l.msg)))
  await t.rejects(adapter.broker.publish(message('lobby', 'into the void'), null), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' }, 'told at once, not queued')
  await t.rejects(adapter.presence.join('lobby', { id: 'u', name: 'u' }), 'presence too')

  const up = Promise.all([adapterEvent('up', 'commands'), adapterEvent('up', 'subscriber')])
  await redis.start()
  await up
  t.ok(lines.some((l) => l.level === 30 && /Redis is back/.test(l.msg)), 'logged when back')
  // A restarted Redis without persistence lost the room: a new epoch, from 1.
  t.equal((await adapter.broker.publish(message('lobby', 'after'), null)).message.offset, 1)
  t.strictSame(await node.delivery().then((d) => [d.message.text, d.afterResets]), ['after', 1], 'delivered again, after a reset, and nothing else before it')
  t.strictSame(node.resets, ['lobby'])
})

t.test('sharded pub/sub from Redis 7 on, by the version in INFO server', async (t) => {
  const info = (version: string): string => `# Server\r\nredis_version:${version}\r\nredis_git_sha1:00000000\r\n`
  t.equal(pubSubOf(info('6.2.14')), 'plain')
  t.equal(pubSubOf(info('6.0.0')), 'plain')
  t.equal(pubSubOf(info('7.0.0')), 'sharded')
  t.equal(pubSubOf(info('7.0.15')), 'sharded')
  t.equal(pubSubOf(info('10.1.2')), 'sharded', 'a major version of two digits')
  t.equal(pubSubOf(info('255.255.255')), 'sharded', 'an unstable build')
  t.equal(pubSubOf('# Server\r\nredis_mode:standalone\r\n'), 'plain', 'no version: plain, which every server of the chat reads alike')
  t.equal(pubSubOf(info('seven')), 'plain')
  t.equal(pubSubOf('# Server\r\nmy_redis_version:7.0.0\r\n'), 'plain', 'only the field itself')
})

/** Calls of `command` that Redis counted, scripts' calls included. */
async function calls (admin: Redis, command: string): Promise<number> {
  const stats = await admin.info('commandstats')
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0)
}

t.test('on Redis 7 rooms and control go over sharded pub/sub (SPUBLISH, SSUBSCRIBE)', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  t.match(await admin.info('server'), /^redis_version:7\./m, 'the Redis under test is 7')
  const a = await redisNode(t, redis)
  const b = await redisNode(t, redis)
  await a.adapter.broker.subscribe('lobby')
  await b.adapter.broker.subscribe('lobby')
  const channel = 'fastify-chat:{lobby}:ch'
  t.strictSame(await admin.pubsub('SHARDNUMSUB', channel, 'fastify-chat:control'), [channel, 2, 'fastify-chat:control', 2], 'both servers listen to the room and to control on shard channels')
  t.strictSame(await admin.pubsub('NUMSUB', channel, 'fastify-chat:control'), [channel, 0, 'fastify-chat:control', 0], 'on no plain one: one connection never mixes both kinds')
  const published = await calls(admin, 'spublish')
  await a.adapter.broker.publish(message('lobby', 'sharded'), null)
  t.equal((await b.node.delivery()).message.text, 'sharded', 'a message reaches the other server')
  t.equal((await a.node.delivery()).message.text, 'sharded', 'and this one')
  t.equal(await calls(admin, 'spublish'), published + 1, 'published by SPUBLISH')
  await a.adapter.broker.unsubscribe('lobby')
  t.strictSame(await admin.pubsub('SHARDNUMSUB', channel), [channel, 1], 'SUNSUBSCRIBE when a room is left')
})

t.test('shardedPubSub: false keeps rooms on PUBLISH and SUBSCRIBE, as on Redis 6.2', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const a = await redisNode(t, redis, { shardedPubSub: false })
  const b = await redisNode(t, redis, { shardedPubSub: false })
  await a.adapter.broker.subscribe('lobby')
  await b.adapter.broker.subscribe('lobby')
  const channel = 'fastify-chat:{lobby}:ch'
  t.strictSame(await admin.pubsub('NUMSUB', channel, 'fastify-chat:control'), [channel, 2, 'fastify-chat:control', 2], 'both servers listen to the room and to control on plain channels')
  t.strictSame(await admin.pubsub('SHARDNUMSUB', channel, 'fastify-chat:control'), [channel, 0, 'fastify-chat:control', 0], 'and on no shard channel')
  const [published, sharded] = [await calls(admin, 'publish'), await calls(admin, 'spublish')]
  await a.adapter.broker.publish(message('lobby', 'plain'), null)
  t.equal((await b.node.delivery()).message.text, 'plain', 'a message reaches the other server')
  t.equal(await calls(admin, 'publish'), published + 1, 'published by PUBLISH')
  t.equal(await calls(admin, 'spublish'), sharded, 'not by SPUBLISH')
  await a.adapter.broker.unsubscribe('lobby')
  t.strictSame(await admin.pubsub('NUMSUB', channel), [channel, 1], 'UNSUBSCRIBE when a room is left')

  // Asked for explicitly, sharded works on Redis 7 like the default.
  const c = await redisNode(t, redis, { shardedPubSub: true })
  await c.adapter.broker.subscribe('lobby')
  t.strictSame(await admin.pubsub('SHARDNUMSUB', channel), [channel, 1])
})
