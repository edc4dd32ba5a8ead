// Scrolling back through a room's history with `history` frames, over real
// sockets, on SQLite and on Redis; and every way a request is refused.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { redisAdapter, sqliteStore } from '../../index.js'
import type { FastifyChatOptions, HistoryFrame, HistoryStore, ServerFrame } from '../../index.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { MAX_CONCURRENT_READS } from '../../lib/chat/scrollback.js'
import { join, listen, within } from '../helpers/chat.js'
import { eventually } from '../helpers/eventually.js'
import type { Client } from '../helpers/chat.js'
import { pageBack, range } from '../helpers/history.js'
import { adminClient, startRedis } from '../helpers/redis.js'

const dir = await mkdtemp(joinPath(tmpdir(), 'fastify-chat-scrollback-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
let files = 0
const file = (): string => joinPath(dir, `history-${++files}.db`)

let cids = 0

// History requests count against the per-socket rate limit like any frame;
// these tests page faster than a reader would, so it is off.
const UNLIMITED = { rateLimit: false } as const

/** Sends `request` with a fresh cid and returns the answer to it (a `history` or an `error`), passing over other frames. */
async function ask (client: Client, request: Record<string, unknown>): Promise<HistoryFrame | Extract<ServerFrame, { type: 'error' }>> {
  const cid = `h${++cids}`
  client.send({ ...request, cid })
  // Bounded: each frame is awaited within the helper's timeout, and at most this many are passed over.
  for (let i = 0; i < 2000; i++) {
    const frame = await client.next('the answer to a history request')
    if ((frame.type === 'history' || frame.type === 'error') && frame.cid === cid) return frame
  }
  throw new Error('no answer among 2000 frames')
}

async function page (client: Client, room: string, before: number, limit: number): Promise<HistoryFrame> {
  const answer = await ask(client, { type: 'history', room, before, limit })
  if (answer.type !== 'history') throw new Error(`expected a history page, got ${JSON.stringify(answer)}`)
  return answer
}

/** Pages back from the latest through `room` with `limit` and checks every offset from 1 to `last` comes once, newest page first. */
async function pagesThrough (t: Test, client: Client, room: string, last: number, limit: number, epoch: string): Promise<void> {
  const pages = await pageBack(async (before) => await page(client, room, before, limit), last + 1)
  t.strictSame(pages.flatMap((p) => p.messages.map((m) => m.offset).reverse()), range(1, last).reverse(), `limit ${limit}: every offset once, in order`)
  t.equal(pages.length, Math.ceil(last / limit), `limit ${limit}: full pages`)
  t.ok(pages.slice(0, -1).every((p) => p.more && p.messages.length === limit), `limit ${limit}: more on every page before the last`)
  t.equal(pages.at(-1)?.more, false, `limit ${limit}: no more on the last`)
  t.ok(pages.every((p) => p.epoch === epoch && p.room === room), `limit ${limit}: each page names the room and its epoch`)
  t.ok(pages.every((p) => p.messages.every((m) => m.room === room && m.text === `m${m.offset}` && m.from.id === 'system')), `limit ${limit}: the stored messages`)
}

async function fill (broadcast: (room: string, text: string) => Promise<unknown>, room: string, count: number): Promise<void> {
  for (let i = 1; i <= count; i++) await broadcast(room, `m${i}`)
}

t.test('paging back through 1,000 messages in SQLite gives every offset once, in order', async (t) => {
  const { app, url } = await listen(t, { ...UNLIMITED, store: sqliteStore({ path: file() }), maxHistoryPage: 1000 })
  await fill(async (room, text) => await app.chat.broadcast(room, text), 'lobby', 1000)
  const client = await join(url)
  const { epoch } = await page(client, 'lobby', 1, 1)
  for (const limit of [37, 100, 1000]) await pagesThrough(t, client, 'lobby', 1000, limit, epoch)
  const onServer = await app.chat.history('lobby', { before: 500, limit: 37 })
  const frame = await page(client, 'lobby', 500, 37)
  t.strictSame([onServer.epoch, onServer.messages, onServer.more], [frame.epoch, frame.messages, frame.more], 'app.chat.history gives the same page')
  t.equal(onServer.offset, 1000, 'with the latest offset')
  client.close()
})

t.test('paging back through 1,000 messages in Redis gives every offset once, in order, on another server', async (t) => {
  const redis = await startRedis(t)
  const opts = (): FastifyChatOptions => ({ ...UNLIMITED, historySize: 1000, adapter: redisAdapter({ url: redis.url, prefix: 'scrollback' }) })
  const writer = await listen(t, opts())
  const reader = await listen(t, opts())
  await fill(async (room, text) => await writer.app.chat.broadcast(room, text), 'lobby', 1000)
  const client = await join(reader.url)
  const { epoch } = await page(client, 'lobby', 1, 1)
  for (const limit of [37, 100]) await pagesThrough(t, client, 'lobby', 1000, limit, epoch)
  const onServer = await reader.app.chat.history('lobby', { before: 37, limit: 10 })
  t.strictSame(onServer.messages.map((m) => m.offset), range(27, 36))
  t.strictSame(onServer.messages, (await page(client, 'lobby', 37, 10)).messages, 'app.chat.history gives the same page')

  t.test('an epoch changed under the client is answered like any page: the client compares', async (t) => {
    await adminClient(t, redis).flushall()
    const after = await page(client, 'lobby', 1001, 10)
    t.not(after.epoch, epoch, 'the new epoch')
    t.strictSame([after.messages, after.more], [[], false], 'nothing is kept under it')
  })
})

t.test('a page larger than the socket may take at once is cut to its latest messages, with more', async (t) => {
  const { app, url } = await listen(t, { ...UNLIMITED, maxBufferedBytes: 16 * 1024, historySize: 60 })
  await fill(async (room, text) => await app.chat.broadcast(room, text + ' '.repeat(1000) + '.'), 'lobby', 60)
  const client = await join(url, '', {})
  const pages = await pageBack(async (before) => await page(client, 'lobby', before, 60), 61)
  t.ok(pages.length > 1, `cut into ${pages.length} pages`)
  t.ok(pages.every((p) => Buffer.byteLength(JSON.stringify(p)) <= 8 * 1024), 'each within half the write budget')
  t.strictSame(pages.flatMap((p) => p.messages.map((m) => m.offset).reverse()), range(1, 60).reverse(), 'still every offset once')
})

t.test('bad requests get their codes, with the cid', async (t) => {
  const { url } = await listen(t, { ...UNLIMITED, maxHistoryPage: 10 })
  const client = await join(url)
  const refused = async (request: Record<string, unknown>, code: string, what: string): Promise<void> => {
    const answer = await ask(client, { type: 'history', ...request })
    t.match(answer, { type: 'error', code, cid: /^h\d+$/ }, what)
  }
  await refused({ room: 'elsewhere', before: 5, limit: 5 }, 'not_in_room', 'a room the socket is not in')
  t.match(await ask(client, { type: 'history', room: 'elsewhere', before: 5, limit: 5 }), { room: 'elsewhere' }, 'not_in_room names the room')
  await refused({ room: 'lobby', before: 5, limit: 11 }, 'invalid_message', 'a limit over maxHistoryPage')
  await refused({ room: 'lobby', before: 5, limit: 0 }, 'invalid_message', 'limit 0')
  await refused({ room: 'lobby', before: 5 }, 'invalid_message', 'no limit')
  await refused({ room: 'lobby', limit: 5 }, 'invalid_message', 'no before')
  await refused({ room: 'lobby', before: -1, limit: 5 }, 'invalid_message', 'a negative before')
  await refused({ room: 'lobby', before: '5', limit: 5 }, 'invalid_message', 'a string before')
  await refused({ room: 'lobby', before: 5, limit: 5, after: 3 }, 'invalid_message', 'a field of no history request')
  await refused({ room: 'no room!', before: 5, limit: 5 }, 'invalid_room', 'a bad room name')
  client.send({ type: 'history', room: 'lobby', before: 5, limit: 5, cid: 'x'.repeat(65) })
  t.match(await client.expect('error'), { code: 'invalid_message', cid: undefined }, 'an overlong cid is refused, not echoed')
  t.match(await ask(client, { type: 'history', room: 'lobby', before: 5, limit: 10 }), { type: 'history', messages: [], more: false }, 'the socket is still served')
})

t.test('authorize is asked with action history: a refusal is forbidden, and the socket stays in the room', async (t) => {
  const asked: Array<{ action: string, room: string, id: string }> = []
  const { app, url } = await listen(t, {
    ...UNLIMITED,
    authorize: async ({ action, room, client }) => {
      asked.push({ action, room, id: client.id })
      return action !== 'history' || room !== 'lobby'
    }
  })
  await app.chat.broadcast('other', 'readable')
  const client = await join(url)
  client.send({ type: 'join', room: 'other' })
  await client.expect('joined')
  t.match(await ask(client, { type: 'history', room: 'lobby', before: 5, limit: 5 }), { type: 'error', code: 'forbidden', room: 'lobby', cid: /^h\d+$/ })
  const allowed = await page(client, 'other', 5, 5)
  t.strictSame(allowed.messages.map((m) => m.text), ['readable'], 'another room is read')
  t.strictSame(asked.filter((a) => a.action === 'history').map((a) => a.room), ['lobby', 'other'], 'asked once per request, with the room')
  app.chat.broadcast('lobby', 'still here').catch(() => {})
  t.match(await client.expect('message'), { room: 'lobby', text: 'still here' }, 'still a member of the refused room')
})

t.test('a store without before: requests get unknown_type, app.chat.history with before throws FST_CHAT_UNSUPPORTED', async (t) => {
  // A store written before before() existed: everything else it does is the memory store's.
  const memory = new MemoryStore()
  const store: HistoryStore = {
    append: async (m) => await memory.append(m),
    entry: async (room, offset) => await memory.entry(room, offset),
    recent: async (room, limit) => await memory.recent(room, limit),
    since: async (room, offset) => await memory.since(room, offset),
    epoch: async (room) => await memory.epoch(room)
  }
  const { app, url } = await listen(t, { store })
  const client = await join(url)
  t.match(await ask(client, { type: 'history', room: 'lobby', before: 5, limit: 5 }), { type: 'error', code: 'unknown_type' })
  await t.rejects(app.chat.history('lobby', { before: 5 }), { code: 'FST_CHAT_UNSUPPORTED', statusCode: 501 })
  t.strictSame(await app.chat.history('lobby'), [], 'history without before still works')
})

t.test(`at most ${MAX_CONCURRENT_READS} history reads run at once on a server; the rest wait their turn, none is refused`, async (t) => {
  // A store whose reads wait until the test lets them go, counting those under way.
  const memory = new MemoryStore()
  let running = 0
  let most = 0
  let reached: () => void = () => {}
  const full = new Promise<void>((resolve) => { reached = resolve })
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  const store: HistoryStore = {
    append: async (m) => await memory.append(m),
    entry: async (room, offset) => await memory.entry(room, offset),
    recent: async (room, limit) => await memory.recent(room, limit),
    since: async (room, offset) => await memory.since(room, offset),
    epoch: async (room) => await memory.epoch(room),
    before: async (room, offset, limit) => {
      most = Math.max(most, ++running)
      if (running === MAX_CONCURRENT_READS) reached()
      await released
      running--
      return await memory.before(room, offset, limit)
    }
  }
  const { app, url } = await listen(t, { ...UNLIMITED, store })
  await app.chat.broadcast('lobby', 'm1')
  const readers = MAX_CONCURRENT_READS + 8
  const clients = await Promise.all(Array.from({ length: readers }, async () => await join(url)))
  const before = app.chat.stats().messagesIn
  const answers = clients.map(async (client) => await page(client, 'lobby', 2, 1))
  await within(full, 3000, `${MAX_CONCURRENT_READS} reads under way`)
  await eventually(async () => app.chat.stats().messagesIn === before + readers, 3000, 'every request received')
  // A turn or two for the requests just received to reach the gate.
  await nextTurn()
  await nextTurn()
  t.equal(running, MAX_CONCURRENT_READS, 'the others wait')
  release()
  const pages = await Promise.all(answers)
  t.ok(pages.every((p) => p.messages.length === 1 && p.messages[0]?.text === 'm1'), 'every request is answered')
  t.equal(most, MAX_CONCURRENT_READS, 'never more at once')
  for (const client of clients) client.close()
})

t.test('a store that fails: unavailable, with the room and cid, and the socket stays', async (t) => {
  const store = sqliteStore({ path: file() })
  const { url } = await listen(t, { store })
  const client = await join(url)
  await store.close()
  t.match(await ask(client, { type: 'history', room: 'lobby', before: 5, limit: 5 }), { type: 'error', code: 'unavailable', room: 'lobby', cid: /^h\d+$/ })
  t.match(await ask(client, { type: 'history', room: 'other', before: 5, limit: 5 }), { type: 'error', code: 'not_in_room' }, 'and answers the next request')
})
