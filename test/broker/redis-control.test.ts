// RedisControl on a real redis-server, through the adapter that routes the
// control channel to it: direct rooms' pairs, commands between servers, and
// what it does with payloads no server of ours sent.
import Fastify from 'fastify'
import type { FastifyBaseLogger } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import type { ControlCommand } from '../../lib/broker/control.js'
import { RedisAdapter } from '../../lib/broker/redis/redis-adapter.js'
import type { RedisAdapterOptions } from '../../lib/broker/redis/redis-adapter.js'
import { RecordingNode, message } from '../helpers/broker-conformance.js'
import { within } from '../helpers/chat.js'
import { adminClient, allUnavailable, restartForControl, startRedis } from '../helpers/redis.js'
import type { RedisServer } from '../helpers/redis.js'

/** A recording node whose control commands can be awaited in order; `fail` makes the next one throw. */
class CommandNode extends RecordingNode {
  readonly #queue: ControlCommand[] = []
  #waiter: (() => void) | null = null
  fail = false

  override command (command: ControlCommand): void {
    super.command(command)
    this.#queue.push(command)
    this.#waiter?.()
    if (this.fail) {
      this.fail = false
      throw new Error('this node failed the command')
    }
  }

  /** The next command handed to this node. */
  async next (): Promise<ControlCommand> {
    if (this.#queue.length === 0) {
      await within(new Promise<void>((resolve) => { this.#waiter = resolve }), 3000, 'a control command')
      this.#waiter = null
    }
    return this.#queue.shift() as ControlCommand
  }
}

/** A logger that keeps its lines. */
function recordingLog (): { log: FastifyBaseLogger, lines: Array<{ level: number, msg: string }> } {
  const lines: Array<{ level: number, msg: string }> = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  return { log: app.log, lines }
}

/** A started adapter (one "server") on `redis` with a {@link CommandNode}, closed when the test ends. */
async function server (t: Test, redis: RedisServer, opts: Partial<RedisAdapterOptions> = {}, log = Fastify().log): Promise<{ adapter: RedisAdapter, node: CommandNode }> {
  const adapter = new RedisAdapter({ url: redis.url, presenceTtlMs: 600, ...opts } as RedisAdapterOptions)
  const node = new CommandNode()
  t.teardown(() => adapter.close())
  await adapter.start({ node, historySize: 10, log })
  return { adapter, node }
}

const sorted = (users: Array<{ id: string, name: string }> | null): Array<{ id: string, name: string }> | null =>
  users === null ? null : [...users].sort((a, b) => a.id.localeCompare(b.id))

t.test('pair and pairOf: the opener\'s name, the other\'s id until they pair themselves, seen by every server', async (t) => {
  const redis = await startRedis(t)
  const a = await server(t, redis, { prefix: 'chat' })
  const b = await server(t, redis, { prefix: 'chat' })
  const room = 'dm-pair'
  t.equal(await b.adapter.control.pairOf(room), null, 'a room never opened has no pair')

  await a.adapter.control.pair(room, { id: 'x', name: 'Xavier' }, 'y')
  t.same(sorted(await b.adapter.control.pairOf(room)), [{ id: 'x', name: 'Xavier' }, { id: 'y', name: 'y' }], 'the other is named by its id')
  const admin = adminClient(t, redis)
  t.same(await admin.hgetall('chat:{dm-pair}:pair'), { x: 'Xavier', y: 'y' }, 'a hash beside the room\'s other keys, under the prefix')

  await b.adapter.control.pair(room, { id: 'x', name: 'Xavi' }, 'y')
  t.same(sorted(await a.adapter.control.pairOf(room)), [{ id: 'x', name: 'Xavi' }, { id: 'y', name: 'y' }], 'the opener\'s name is its latest')

  await a.adapter.control.pair(room, { id: 'y', name: 'Yvonne' }, 'x')
  t.same(sorted(await b.adapter.control.pairOf(room)), [{ id: 'x', name: 'Xavi' }, { id: 'y', name: 'Yvonne' }], 'once the other pairs itself it has its name, and the opener keeps its own')

  await b.adapter.control.pair(room, { id: 'x', name: 'Xavi' }, 'y')
  t.same(sorted(await a.adapter.control.pairOf(room)), [{ id: 'x', name: 'Xavi' }, { id: 'y', name: 'Yvonne' }], 'opening it again does not turn a name back into an id')

  t.equal(await a.adapter.control.pairOf('dm-other'), null, 'pairs are per room')
  const elsewhere = await server(t, redis, { prefix: 'other' })
  t.equal(await elsewhere.adapter.control.pairOf(room), null, 'and per prefix')
})

t.test('send reaches every other server of the chat, not the sender, nor a chat under another prefix', async (t) => {
  const redis = await startRedis(t)
  const a = await server(t, redis)
  const b = await server(t, redis)
  const c = await server(t, redis)
  const other = await server(t, redis, { prefix: 'other' })
  const otherMarker = await server(t, redis, { prefix: 'other' })

  const kick: ControlCommand = { type: 'disconnect', userId: 'bob', reason: 'banned' }
  await a.adapter.control.send(kick)
  t.same(await b.node.next(), kick, 'b gets it')
  t.same(await c.node.next(), kick, 'c gets it')

  // Markers, each from another server: the next command each node gets shows what it did not get before.
  const fromB: ControlCommand = { type: 'remove', room: 'lobby', userId: 'bob', reason: 'marker from b' }
  await b.adapter.control.send(fromB)
  t.same(await a.node.next(), fromB, 'a never got its own command: the next it gets is b\'s')
  t.same(await c.node.next(), fromB)
  const fromC: ControlCommand = { type: 'add', room: 'lobby', userId: 'bob', with: { id: 'x', name: 'X' } }
  await c.adapter.control.send(fromC)
  t.same(await b.node.next(), fromC, 'b never got its own either')
  t.same(await a.node.next(), fromC, 'a command arrives as sent, with its direct user')

  const mine: ControlCommand = { type: 'disconnect', clientId: 'c1', reason: 'other chat' }
  await otherMarker.adapter.control.send(mine)
  t.same(await other.node.next(), mine, 'another prefix\'s server got none of ours: the next it gets is its own chat\'s')
  t.same(a.node.commands, [fromB, fromC], 'nor did ours get the other chat\'s')
})

t.test('payloads on the control channel that are not a command are ignored, and a failing command is logged', async (t) => {
  const redis = await startRedis(t)
  const { log, lines } = recordingLog()
  const a = await server(t, redis)
  const b = await server(t, redis, {}, log)
  const admin = adminClient(t, redis)
  const channel = 'fastify-chat:control'
  const junk = [
    'not json',
    '',
    'null',
    '42',
    '"c"',
    JSON.stringify({ t: 'c' }),
    JSON.stringify({ t: 'c', s: 'elsewhere' }),
    JSON.stringify({ t: 'c', s: 'elsewhere', c: null }),
    JSON.stringify({ t: 'c', s: 'elsewhere', c: 'disconnect' }),
    JSON.stringify({ t: 'c', s: 'elsewhere', c: 7 }),
    JSON.stringify({ t: 'x', s: 'elsewhere', c: { type: 'disconnect', userId: 'bob', reason: 'r' } }),
    JSON.stringify({ s: 'elsewhere', c: { type: 'disconnect', userId: 'bob', reason: 'r' } })
  ]
  for (const payload of junk) t.equal(await admin.spublish(channel, payload), 2, `published to both servers: ${payload}`)
  const marker: ControlCommand = { type: 'disconnect', userId: 'marker', reason: 'after the junk' }
  await a.adapter.control.send(marker)
  t.same(await b.node.next(), marker, 'the first command b is handed is the one sent after the junk')

  // A node that throws: logged, and the next command is still handed over.
  b.node.fail = true
  const failing: ControlCommand = { type: 'remove', room: 'lobby', userId: 'bob' }
  await a.adapter.control.send(failing)
  t.same(await b.node.next(), failing)
  const after: ControlCommand = { type: 'add', room: 'lobby', userId: 'bob' }
  await a.adapter.control.send(after)
  t.same(await b.node.next(), after, 'the control channel still works')
  t.match(lines.filter((line) => line.level >= 50), [{ msg: 'fastify-chat: a control command failed', err: { message: 'this node failed the command' } }])
})

t.test('with Redis away, send, pair and pairOf reject with FST_CHAT_ADAPTER_UNAVAILABLE; once back, commands flow again', async (t) => {
  const redis = await startRedis(t)
  const commandTimeoutMs = 300
  const a = await server(t, redis, { commandTimeoutMs })
  const b = await server(t, redis, { commandTimeoutMs })

  await redis.kill()
  const waited = await allUnavailable(t, {
    send: async () => await a.adapter.control.send({ type: 'disconnect', userId: 'bob', reason: 'while down' }),
    pair: async () => await a.adapter.control.pair('dm-down', { id: 'x', name: 'X' }, 'y'),
    pairOf: async () => await a.adapter.control.pairOf('dm-down')
  })
  t.ok(waited < commandTimeoutMs + 1000, `all rejected within ${Math.round(waited)} ms`)

  await restartForControl(t, redis, 2)
  const kick: ControlCommand = { type: 'disconnect', userId: 'bob', reason: 'after the restart' }
  await within(a.adapter.control.send(kick), 3000, 'send after the restart')
  t.same(await b.node.next(), kick, 'the control channel was subscribed again')
  t.same(b.node.commands, [kick], 'and nothing sent while Redis was down arrived')
  t.same(a.node.commands, [], 'the sender still skips its own')
})

t.test('a server that left its last room still hears control: its subscriber never mixes plain and sharded channels', async (t) => {
  // Redis 7 counts plain and shard subscriptions apart, and ioredis leaves
  // subscriber mode when an unsubscribe answers 0: a SUNSUBSCRIBE of the
  // last room would drop a plain control channel's messages.
  const redis = await startRedis(t)
  const a = await server(t, redis)
  const b = await server(t, redis)
  await a.adapter.broker.subscribe('lobby')
  await a.adapter.broker.unsubscribe('lobby')
  const command: ControlCommand = { type: 'disconnect', userId: 'bob', reason: 'after the last room' }
  await b.adapter.control.send(command)
  t.same(await a.node.next(), command, 'handed over after the last room was left')
  await a.adapter.broker.subscribe('dev')
  await b.adapter.broker.publish(message('dev', 'still a subscriber'), null)
  t.equal((await a.node.delivery()).message.text, 'still a subscriber', 'and rooms subscribed again are delivered')
})
