// Structured messages end to end: `meta` on real sockets, checked, stored,
// replayed and recovered by every store (memory, an SQLite file, Redis).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat, { redisAdapter, sqliteStore } from '../index.js'
import type { FastifyChatOptions, OutgoingMessage } from '../index.js'
import type { MessageFrame } from '../lib/protocol/wire.js'
import { Client, join, listen, logLines } from './helpers/chat.js'
import { startRedis } from './helpers/redis.js'

const dir = await mkdtemp(joinPath(tmpdir(), 'fastify-chat-meta-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

const conventions = {
  type: 'object',
  properties: {
    replyTo: { type: 'integer', minimum: 1 },
    mentions: { type: 'array', items: { type: 'string' }, maxItems: 10 },
    checked: { type: 'boolean' }
  },
  additionalProperties: false
}

/** Sends a message frame and returns the sender's next frame (its echo, or an error). */
async function send (client: Client, frame: Record<string, unknown>): Promise<ReturnType<Client['next']>> {
  client.send({ type: 'message', ...frame })
  return await client.next()
}

t.test('meta reaches the sender and every member as sent; a message without meta looks as before', async (t) => {
  const { url } = await listen(t)
  const alice = await join(url, '?name=alice')
  const bob = await join(url, '?name=bob')
  await alice.expect('presence')
  const meta = { replyTo: 1, mentions: ['bob', 'zoë 🚀'], nested: { quote: 'say "hi"\n', list: [1, null, true] } }
  t.match(await send(alice, { text: 'with meta', cid: 'c1', meta }), { type: 'message', text: 'with meta', cid: 'c1', meta })
  t.match(await bob.expect('message'), { text: 'with meta', meta })
  const plain = await send(alice, { text: 'without' })
  t.strictSame(Object.keys(plain), ['type', 'room', 'offset', 'ts', 'from', 'text'], 'no meta key, the same frame as before')
  t.strictSame(Object.keys(await bob.expect('message')), ['type', 'room', 'offset', 'ts', 'from', 'text'])
  alice.send('plain text frame')
  t.notOk(Object.hasOwn(await alice.expect('message'), 'meta'))
})

t.test('bad meta gets invalid_message or too_large with its cid, nothing is stored, and the client chats on', async (t) => {
  const { app, url } = await listen(t, { maxMetaBytes: 64 })
  const client = await join(url)
  for (const meta of [null, [], ['a'], 'text', 7, true]) {
    t.match(await send(client, { text: 'hi', cid: 'bad', meta }), { type: 'error', code: 'invalid_message', cid: 'bad', message: '"meta" must be a JSON object' }, JSON.stringify(meta))
  }
  // {"k":"…"} is 8 bytes around the value; é is 2 bytes in UTF-8.
  t.match(await send(client, { text: 'hi', cid: 'big', meta: { k: 'é'.repeat(29) } }), { type: 'error', code: 'too_large', cid: 'big', message: '"meta" is larger than 64 bytes as JSON' })
  const deep = '{"type":"message","text":"hi","cid":"deep","meta":{"a":' + '['.repeat(5000) + ']'.repeat(5000) + '}}'
  client.send(deep)
  t.match(await client.next(), { type: 'error', code: 'invalid_message', cid: 'deep', message: /nests objects and arrays deeper than 32 levels/ })
  t.strictSame(await app.chat.history('lobby'), [], 'nothing was stored')
  t.match(await send(client, { text: 'hi', cid: 'fits', meta: { k: 'é'.repeat(28) } }), { type: 'message', offset: 1, cid: 'fits', meta: { k: 'é'.repeat(28) } }, 'exactly maxMetaBytes is fine')
})

t.test('metaSchema', async (t) => {
  const { app, url } = await listen(t, { metaSchema: conventions })
  const client = await join(url)

  t.test('a meta that matches is stored and sent', async (t) => {
    const meta = { replyTo: 3, mentions: ['u1'] }
    t.match(await send(client, { text: 'ok', meta }), { type: 'message', meta })
  })

  t.test('a meta that breaks it is invalid_message naming the failing path', async (t) => {
    t.match(await send(client, { text: 'no', cid: 'c1', meta: { replyTo: 0 } }), { type: 'error', code: 'invalid_message', cid: 'c1', message: '"meta" breaks the schema at /replyTo: must be >= 1' })
    t.match(await send(client, { text: 'no', meta: { mentions: ['u1', 2] } }), { type: 'error', code: 'invalid_message', message: '"meta" breaks the schema at /mentions/1: must be string' })
    t.match(await send(client, { text: 'no', meta: { replyTo: '5' } }), { type: 'error', code: 'invalid_message', message: /at \/replyTo: must be integer/ }, 'a string is not coerced')
  })

  t.test('a property the schema forbids is refused, not stripped', async (t) => {
    t.match(await send(client, { text: 'no', cid: 'c2', meta: { replyTo: 1, extra: 'x' } }), { type: 'error', code: 'invalid_message', cid: 'c2', message: '"meta" breaks the schema at /extra: must NOT have additional properties' })
    t.notOk((await app.chat.history('lobby')).some((m) => m.text === 'no'), 'none of the refused messages was stored')
  })

  t.test('a message without meta is not checked against it', async (t) => {
    t.match(await send(client, { text: 'plain' }), { type: 'message', text: 'plain' })
  })

  t.test('the cid of a refused message can be used again', async (t) => {
    t.match(await send(client, { text: 'fixed', cid: 'c1', meta: { replyTo: 1 } }), { type: 'message', cid: 'c1', meta: { replyTo: 1 } })
  })
})

t.test('a bad metaSchema or maxMetaBytes fails register with FST_CHAT_INVALID_OPTION', async (t) => {
  const bad: Array<[string, FastifyChatOptions, RegExp]> = [
    ['not an object', { metaSchema: 'object' as unknown as Record<string, unknown> }, /"metaSchema" must be a JSON Schema object, got "object"/],
    ['null', { metaSchema: null as unknown as Record<string, unknown> }, /"metaSchema" must be a JSON Schema object, got null/],
    ['an invalid type', { metaSchema: { type: 'objekt' } }, /"metaSchema" is not a schema Ajv can compile/],
    ['an unknown keyword', { metaSchema: { type: 'object', additionalProperty: false } }, /unknown keyword: "additionalProperty"/],
    ['maxMetaBytes 1', { maxMetaBytes: 1 }, /"maxMetaBytes" must be an integer from 2 to 1048576, got 1/],
    ['maxMetaBytes "2048"', { maxMetaBytes: '2048' as unknown as number }, /"maxMetaBytes" must be an integer/]
  ]
  for (const [what, opts, message] of bad) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => await app.register(fastifyChat, opts).ready(), { code: 'FST_CHAT_INVALID_OPTION', message }, what)
  }
})

t.test('onMessage reads and changes meta; what it leaves is checked again', async (t) => {
  const seen: OutgoingMessage[] = []
  const { stream, lines } = logLines()
  const app = Fastify({ logger: { level: 'error', stream } })
  await app.register(fastifyChat, {
    presenceGraceMs: 0,
    metaSchema: conventions,
    onMessage (message) {
      seen.push(structuredClone(message))
      switch (message.text) {
        case 'mark': return { ...message, meta: { ...message.meta, checked: true } }
        case 'add': return { ...message, meta: { replyTo: 1 } }
        case 'drop meta': return { ...message, meta: undefined }
        case 'text only': return { room: message.room, text: 'TEXT ONLY' }
        case 'break': return { ...message, meta: { replyTo: 'one' } }
        case 'break in place': (message.meta as Record<string, unknown>).extra = 1; return true
        case 'oversize': return { ...message, meta: { mentions: ['x'.repeat(3000)] } }
        default: return undefined
      }
    }
  })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = await join(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}`)

  t.match(await send(client, { text: 'as is', cid: 'c0', meta: { replyTo: 2 } }), { type: 'message', meta: { replyTo: 2 } })
  t.strictSame(seen.at(-1), { room: 'lobby', text: 'as is', cid: 'c0', meta: { replyTo: 2 } }, 'the hook sees the meta')
  t.match(await send(client, { text: 'mark', meta: { replyTo: 2 } }), { type: 'message', meta: { replyTo: 2, checked: true } }, 'a changed meta is stored')
  t.match(await send(client, { text: 'add' }), { type: 'message', text: 'add', meta: { replyTo: 1 } }, 'the hook may add a meta')
  t.notOk(Object.hasOwn(await send(client, { text: 'drop meta', meta: { replyTo: 2 } }), 'meta'), 'or remove it')
  t.match(await send(client, { text: 'text only', meta: { replyTo: 2 } }), { type: 'message', text: 'TEXT ONLY', meta: { replyTo: 2 } }, 'a returned message without a meta key keeps the sender\'s')

  for (const text of ['break', 'break in place', 'oversize']) {
    t.match(await send(client, { text, cid: `c-${text}`, meta: { replyTo: 2 } }), { type: 'error', code: 'internal_error', cid: `c-${text}` }, `${text}: the app's bug is not sent`)
  }
  t.equal(lines.filter((line) => line.msg === 'fastify-chat: onMessage returned a message whose meta is invalid').length, 3, 'and is logged')
  t.match(lines.map((line) => line.problem), [/at \/replyTo: must be integer/, /at \/extra: must NOT have additional properties/, /larger than 2048 bytes/])
  t.strictSame((await app.chat.history('lobby')).map((m) => m.text), ['as is', 'mark', 'add', 'drop meta', 'TEXT ONLY'], 'none of those was stored')
})

/**
 * What every store must do with meta, on the plugin: `open` returns a fresh
 * app (or, given the previous one, one on the same history, closing that
 * one); `other` an app on the same history (another node) when there is one.
 */
async function roundTrips (t: Test, name: string, open: (t: Test) => Promise<{ app: FastifyInstance, url: string }>, again: (t: Test, before: FastifyInstance) => Promise<{ app: FastifyInstance, url: string }>): Promise<void> {
  t.test(`${name}: meta is replayed in joined, recovered with since, and resent cids get it back`, async (t) => {
    const { app, url } = await open(t)
    const alice = await join(url, '?name=alice')
    const meta = { replyTo: 1, mentions: ['bob'] }
    const first = await send(alice, { text: 'first' }) as MessageFrame
    const second = await send(alice, { text: 'second', cid: 'c2', meta }) as MessageFrame
    t.match(second, { offset: first.offset + 1, meta })
    t.match(await send(alice, { text: 'resent', cid: 'c2', meta: { replyTo: 9 } }), { type: 'message', offset: second.offset, text: 'second', meta }, 'a resent cid gets the stored copy, meta and all')

    const late = await Client.connect(url)
    await late.expect('welcome')
    const joined = await late.expect('joined')
    t.strictSame(joined.history.slice(-2), [
      { room: 'lobby', offset: first.offset, ts: first.ts, from: first.from, text: 'first' },
      { room: 'lobby', offset: second.offset, ts: second.ts, from: second.from, text: 'second', cid: 'c2', meta }
    ], 'joined replays meta, and no meta key where there was none')
    const recovering = await Client.connect(url, `/chat?since=${joined.epoch}:${first.offset}`)
    await recovering.expect('welcome')
    t.match(await recovering.expect('joined'), { recovered: true, history: [{ offset: second.offset, meta }] }, 'since recovers meta')
    t.match(await app.chat.history('lobby', { since: first.offset }), [{ offset: second.offset, meta }])

    const next = await again(t, app)
    const back = await Client.connect(next.url, `/chat?since=${joined.epoch}:${first.offset}`)
    await back.expect('welcome')
    t.match(await back.expect('joined'), { recovered: true, history: [{ offset: second.offset, text: 'second', meta }] }, 'through the other app too')
    const other = await join(next.url, '?name=carol')
    t.match(await send(other, { text: 'retried elsewhere', cid: 'c2' }), { type: 'message', offset: second.offset, text: 'second', meta }, 'and so does a cid resent there')
  })
}

await roundTrips(t, 'memory store', async (t) => await listen(t), async (_t, app) => ({ app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}` }))

let files = 0
const sqliteApps = new Map<FastifyInstance, string>()
async function sqliteApp (t: Test, path: string): Promise<{ app: FastifyInstance, url: string }> {
  const store = sqliteStore({ path })
  const opened = await listen(t, { store })
  t.teardown(() => store.close())
  sqliteApps.set(opened.app, path)
  return opened
}
await roundTrips(t, 'SQLite store', async (t) => await sqliteApp(t, joinPath(dir, `chat-${++files}.db`)), async (t, before) => {
  // A restart: the same file, a new process's worth of state.
  await before.close()
  return await sqliteApp(t, sqliteApps.get(before) as string)
})

const redis = await startRedis(t)
let prefixes = 0
const redisPrefixes = new Map<FastifyInstance, string>()
async function redisNode (t: Test, prefix: string): Promise<{ app: FastifyInstance, url: string }> {
  const opened = await listen(t, { adapter: redisAdapter({ url: redis.url, prefix }) })
  redisPrefixes.set(opened.app, prefix)
  return opened
}
// The other app is another node on the same Redis, with its own cid memory: the resent cid is found by the adapter.
await roundTrips(t, 'Redis adapter', async (t) => await redisNode(t, `meta-${++prefixes}`), async (t, before) => await redisNode(t, redisPrefixes.get(before) as string))

t.test('an edit may carry meta, checked like a message\'s; the typed client sends it and keeps it in its view', async (t) => {
  const { url } = await listen(t, { maxMetaBytes: 64, metaSchema: conventions })
  const alice = await join(url, '?name=alice')
  const sent = await send(alice, { text: 'hi', meta: { replyTo: 1 } }) as MessageFrame
  const edit = async (frame: Record<string, unknown>): Promise<ReturnType<Client['next']>> => {
    alice.send({ type: 'edit', room: 'lobby', of: sent.offset, text: 'hello', ...frame })
    return await alice.next()
  }
  t.match(await edit({ cid: 'e1', meta: { replyTo: 'x' } }), { type: 'error', code: 'invalid_message', cid: 'e1', message: /at \/replyTo/ })
  t.match(await edit({ cid: 'e2', meta: { extra: true } }), { type: 'error', code: 'invalid_message', cid: 'e2', message: /at \/extra/ }, 'refused, not stripped')
  t.match(await edit({ cid: 'e3', meta: { mentions: ['x'.repeat(64)] } }), { type: 'error', code: 'too_large', cid: 'e3' })
  t.match(await edit({ cid: 'e4', meta: [] }), { type: 'error', code: 'invalid_message', cid: 'e4' })
  t.match(await edit({ cid: 'e5', meta: { replyTo: 2, checked: true } }), { type: 'edit', of: sent.offset, text: 'hello', cid: 'e5', meta: { replyTo: 2, checked: true } })

  const { connect } = await import('../lib/client.js')
  const WebSocket = (await import('ws')).default
  const conn = connect(`${url}/chat?name=bob`, { WebSocket })
  t.teardown(() => conn.close())
  const joined = new Promise((resolve) => conn.on('joined', resolve))
  await joined
  t.strictSame(conn.message('lobby', sent.offset)?.meta, { replyTo: 2, checked: true }, 'the replayed edit\'s meta is applied')
  t.throws(() => conn.send('x', 'lobby', [] as unknown as Record<string, unknown>), TypeError)
  const echoed = new Promise<MessageFrame>((resolve) => conn.on('message', (m) => { if (m.text === 'mine') resolve(m) }))
  conn.send('mine', 'lobby', { mentions: ['alice'] })
  const mine = await echoed
  t.strictSame(mine.meta, { mentions: ['alice'] })
  const edited = new Promise((resolve) => conn.on('edit', resolve))
  conn.edit('lobby', mine.offset, 'mine, fixed')
  await edited
  t.match(conn.message('lobby', mine.offset), { text: 'mine, fixed', meta: { mentions: ['alice'] } }, 'an edit without meta keeps the message\'s')
})
