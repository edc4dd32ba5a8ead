import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import { createChat } from '../lib/api.js'
import type { Chat } from '../lib/api.js'
import { LocalAdapter } from '../lib/broker/local-adapter.js'
import { Moderation } from '../lib/chat/moderation.js'
import { compileMetaSchema } from '../lib/chat/meta-schema.js'
import type { MetaSchema } from '../lib/chat/meta-schema.js'
import { Hub } from '../lib/chat/hub.js'
import { PresenceTracker } from '../lib/chat/presence-tracker.js'
import { Stats } from '../lib/stats.js'
import { MemoryStore } from '../lib/stores/memory-store.js'
import { Connection } from '../lib/transport/connection.js'
import { Connections } from '../lib/transport/connections.js'
import { wsPair } from './helpers/chat.js'

const HISTORY = 3
const MAX_LENGTH = 10
const MAX_META = 40
const log = { warn () {}, error () {} } as unknown as FastifyBaseLogger

interface Parts {
  chat: Chat
  hub: Hub
  adapter: LocalAdapter
  connections: Connections
  stats: Stats
}

/** The facade over the real parts the plugin builds (a local adapter over a store of `kept` messages per room), without Fastify. */
async function setup (t: Test, kept = 10, presenceListMax = 100, metaSchema: MetaSchema | null = null): Promise<Parts> {
  const adapter = new LocalAdapter(new MemoryStore({ size: kept }), true)
  const stats = new Stats()
  const connections = new Connections(stats)
  const presence = new PresenceTracker(adapter.presence, 0, log)
  const hub = new Hub({ broker: adapter.broker, presence, connections, stats, historySize: HISTORY, maxRoomsPerClient: 5 })
  const moderation = new Moderation(hub, adapter.control, connections)
  await adapter.start({ node: { ...hub.node, command: (command) => moderation.apply(command) }, historySize: HISTORY, log })
  t.teardown(async () => {
    await hub.close(1001, 'done')
    await adapter.close()
  })
  const chat = createChat({ hub, moderation, broker: adapter.broker, presence, connections, stats, historySize: HISTORY, maxMessageLength: MAX_LENGTH, maxMetaBytes: MAX_META, metaSchema, presenceListMax })
  return { chat, hub, adapter, connections, stats }
}

/** A connection on a real socket, added to the hub and joined to `room`. */
async function member (t: Test, hub: Hub, id: string, room: string): Promise<Connection> {
  const { server } = await wsPair(t)
  const ctx = { maxBufferedBytes: 1 << 20, behindBytes: 1 << 18, closeTimeout: 100, stats: new Stats() }
  const conn = new Connection(server, { log } as unknown as FastifyRequest, id, id.toUpperCase(), undefined, ctx, null)
  hub.add(conn)
  await hub.join(conn, room)
  return conn
}

t.test('the documented members and nothing else, on a plain frozen object', async (t) => {
  const { chat } = await setup(t)
  t.strictSame(Reflect.ownKeys(chat).sort(), ['addToRoom', 'broadcast', 'disconnect', 'history', 'occupancy', 'presence', 'removeFromRoom', 'rooms', 'size', 'stats', 'unread'])
  t.equal(Object.getPrototypeOf(chat), Object.prototype, 'no internals up the prototype chain')
  t.ok(Object.isFrozen(chat))
  const loose = chat as unknown as Record<string, unknown>
  t.throws(() => { loose.hub = {} }, 'nothing can be added')
  t.throws(() => { loose.broadcast = () => {} }, 'nor replaced')
  t.throws(() => { loose.size = 5 }, 'size is read-only')
})

t.test('broadcast stores the message and delivers it; the sender is the system unless given', async (t) => {
  const { chat, adapter } = await setup(t)
  const before = Date.now()
  const stored = await chat.broadcast('lobby', 'hello')
  t.match(stored, { room: 'lobby', offset: 1, from: { id: 'system', name: 'system' }, text: 'hello' })
  t.ok(stored.ts >= before && stored.ts <= Date.now(), 'stamped now')
  t.notOk(Object.hasOwn(stored, 'cid'))

  const from = { id: 'bot', name: 'Bot', extra: 'not copied' }
  const second = await chat.broadcast('lobby', 'again', { from })
  t.strictSame(second.from, { id: 'bot', name: 'Bot' }, 'only id and name of the sender')
  t.strictSame((await adapter.broker.recent('lobby', 10)).messages, [stored, second])
})

t.test('broadcast refuses a bad room or text before anything is stored', async (t) => {
  const { chat, adapter } = await setup(t)
  for (const room of ['', 'has space', 'a'.repeat(65), 5, undefined]) {
    await t.rejects(chat.broadcast(room as string, 'hi'), { code: 'FST_CHAT_INVALID_ROOM' }, String(room))
  }
  await t.rejects(chat.broadcast('lobby', ''), { code: 'FST_CHAT_INVALID_MESSAGE', message: /empty/ })
  await t.rejects(chat.broadcast('lobby', '   '), { code: 'FST_CHAT_INVALID_MESSAGE' })
  await t.rejects(chat.broadcast('lobby', 'x'.repeat(MAX_LENGTH + 1)), { code: 'FST_CHAT_INVALID_MESSAGE', message: /longer than 10/ })
  await t.rejects(chat.broadcast('lobby', 5 as unknown as string), { code: 'FST_CHAT_INVALID_MESSAGE' })
  t.equal((await adapter.broker.recent('lobby', 10)).offset, 0, 'nothing stored')
  t.strictSame(await chat.broadcast('lobby', 'x'.repeat(MAX_LENGTH)).then((m) => m.offset), 1, 'up to maxMessageLength is fine')
})

t.test('broadcast stores a meta checked like a sender\'s, and hands out copies of it', async (t) => {
  const schema = compileMetaSchema({ type: 'object', properties: { replyTo: { type: 'integer' }, at: { type: 'string' } }, additionalProperties: false })
  const { chat, adapter } = await setup(t, 10, 100, schema)
  const meta = { replyTo: 1 }
  const stored = await chat.broadcast('lobby', 'hi', { meta })
  t.strictSame(stored.meta, { replyTo: 1 })
  meta.replyTo = 99
  ;(stored.meta as { replyTo: number }).replyTo = 98
  t.strictSame((await adapter.broker.recent('lobby', 1)).messages[0]?.meta, { replyTo: 1 }, 'neither the given object nor the returned one is the stored one')
  const history = await chat.history('lobby')
  ;(history[0]?.meta as { replyTo: number }).replyTo = 97
  t.strictSame((await chat.history('lobby'))[0]?.meta, { replyTo: 1 }, 'history hands out copies too')
  const at = new Date(0)
  t.strictSame((await chat.broadcast('lobby', 'dated', { meta: { at } })).meta, { at: at.toJSON() }, 'stored as its JSON, as every store would keep it')

  await t.rejects(chat.broadcast('lobby', 'hi', { meta: { replyTo: 'one' } }), { code: 'FST_CHAT_INVALID_MESSAGE', message: /at \/replyTo: must be integer/ })
  await t.rejects(chat.broadcast('lobby', 'hi', { meta: { extra: 1 } }), { code: 'FST_CHAT_INVALID_MESSAGE', message: /at \/extra: must NOT have additional properties/ })
  await t.rejects(chat.broadcast('lobby', 'hi', { meta: { at: 'x'.repeat(MAX_META) } }), { code: 'FST_CHAT_INVALID_MESSAGE', message: /larger than 40 bytes/ })
  await t.rejects(chat.broadcast('lobby', 'hi', { meta: [] as unknown as Record<string, unknown> }), { code: 'FST_CHAT_INVALID_MESSAGE', message: /must be a JSON object/ })
  await t.rejects(chat.broadcast('lobby', 'hi', { meta: { replyTo: 1n } }), { code: 'FST_CHAT_INVALID_MESSAGE', message: /cannot be serialised/ })
  t.equal((await adapter.broker.recent('lobby', 10)).offset, 2, 'none of those was stored')
})

t.test('broadcast once the hub is closed is FST_CHAT_CLOSED', async (t) => {
  const { chat, hub } = await setup(t)
  await hub.close(1001, 'closing')
  await t.rejects(chat.broadcast('lobby', 'late'), { code: 'FST_CHAT_CLOSED' })
})

t.test('size, rooms and stats read this server\'s state now', async (t) => {
  const { chat, hub, stats } = await setup(t)
  t.equal(chat.size, 0)
  t.strictSame(chat.rooms(), [])
  const alice = await member(t, hub, 'alice', 'lobby')
  await member(t, hub, 'bob', 'dev')
  t.equal(chat.size, 2)
  t.strictSame(chat.rooms(), ['lobby', 'dev'])
  hub.leave(alice, 'lobby')
  t.strictSame(chat.rooms(), ['dev'], 'a room with no member here is not listed')
  stats.messagesIn = 7
  t.match(chat.stats(), { open: 2, messagesIn: 7 })
  const snapshot = chat.stats()
  snapshot.drops.invalid = 99
  t.equal(chat.stats().drops.invalid, 0, 'a snapshot, not the live counters')
})

t.test('presence lists the users of a room as copies, with their count', async (t) => {
  const { chat, hub } = await setup(t)
  await member(t, hub, 'alice', 'lobby')
  await member(t, hub, 'bob', 'lobby')
  const page = await chat.presence('lobby')
  t.strictSame(page, { users: [{ id: 'alice', name: 'ALICE' }, { id: 'bob', name: 'BOB' }], count: 2 })
  page.users[0].name = 'changed'
  t.equal((await chat.presence('lobby')).users[0].name, 'ALICE', 'changing the result changes nothing')
  t.strictSame(await chat.presence('empty'), { users: [], count: 0 })
  await t.rejects(chat.presence('bad room'), { code: 'FST_CHAT_INVALID_ROOM' })
})

t.test('presence pages: presenceListMax users by default, limit, after; every user once', async (t) => {
  const { chat, hub } = await setup(t, 10, 2)
  const ids = ['alice', 'bob', 'carol', 'dave', 'erin']
  for (const id of ids) await member(t, hub, id, 'lobby')
  const first = await chat.presence('lobby')
  t.strictSame([first.users.map((u) => u.id), first.count], [['alice', 'bob'], 5])
  t.type(first.next, 'string')
  const listed: string[] = []
  let after: string | undefined
  for (let pages = 0; pages < 10; pages++) {
    const page = await chat.presence('lobby', after === undefined ? { limit: 3 } : { limit: 3, after })
    t.ok(page.users.length <= 3)
    listed.push(...page.users.map((u) => u.id))
    if (page.next === undefined) break
    after = page.next
  }
  t.strictSame(listed, ids)
  t.strictSame(await chat.presence('lobby', { limit: 1000 }), { users: ids.map((id) => ({ id, name: id.toUpperCase() })), count: 5 }, 'the last page has no next')
})

t.test('presence refuses a bad limit or cursor; occupancy counts the users', async (t) => {
  const { chat, hub } = await setup(t)
  for (const limit of [0, 1001, 1.5, '5', null]) {
    await t.rejects(chat.presence('lobby', { limit } as unknown as { limit: number }), { code: 'FST_CHAT_INVALID_ARGUMENT' }, `limit ${String(limit)}`)
  }
  for (const after of ['', 'x'.repeat(257), 5]) {
    await t.rejects(chat.presence('lobby', { after } as unknown as { after: string }), { code: 'FST_CHAT_INVALID_ARGUMENT' }, `after ${String(after)}`)
  }
  await t.rejects(chat.presence('lobby', null as unknown as object), { code: 'FST_CHAT_INVALID_ARGUMENT' })
  t.equal(await chat.occupancy('lobby'), 0)
  await member(t, hub, 'alice', 'lobby')
  await member(t, hub, 'bob', 'lobby')
  t.equal(await chat.occupancy('lobby'), 2)
  await t.rejects(chat.occupancy('bad room'), { code: 'FST_CHAT_INVALID_ROOM' })
})

t.test('presenceListMax 0: presence pages one user at a time by default', async (t) => {
  const { chat, hub } = await setup(t, 10, 0)
  await member(t, hub, 'alice', 'lobby')
  await member(t, hub, 'bob', 'lobby')
  t.match(await chat.presence('lobby'), { users: [{ id: 'alice' }], count: 2 })
})

t.test('history: the latest historySize by default, limit, and since', async (t) => {
  const { chat } = await setup(t)
  for (let i = 1; i <= 6; i++) await chat.broadcast('lobby', `m${i}`)
  const offsets = async (opts?: { since?: number, limit?: number }): Promise<number[]> => (await chat.history('lobby', opts)).map((m) => m.offset)
  t.strictSame(await offsets(), [4, 5, 6], 'historySize by default')
  t.strictSame(await offsets({ limit: 5 }), [2, 3, 4, 5, 6])
  t.strictSame(await offsets({ limit: 0 }), [])
  t.strictSame(await offsets({ since: 1 }), [2, 3, 4], 'the first historySize after since: pages forward')
  t.strictSame(await offsets({ since: 2, limit: 10 }), [3, 4, 5, 6], 'everything after since')
  t.strictSame(await offsets({ since: 2, limit: 2 }), [3, 4])
  t.strictSame(await offsets({ since: 0, limit: 10 }), [1, 2, 3, 4, 5, 6])
  t.strictSame(await offsets({ since: 6 }), [], 'up to date')
  t.strictSame(await chat.history('nobody'), [])
})

t.test('history since a point the store no longer has: what it still has after it', async (t) => {
  const { chat } = await setup(t, 4)
  for (let i = 1; i <= 8; i++) await chat.broadcast('lobby', `m${i}`)
  const offsets = async (opts: { since: number, limit?: number }): Promise<number[]> => (await chat.history('lobby', opts)).map((m) => m.offset)
  t.strictSame(await offsets({ since: 1, limit: 10 }), [6, 7, 8], 'the latest historySize: the gap cannot be filled')
  t.strictSame(await offsets({ since: 4, limit: 10 }), [5, 6, 7, 8], 'a point still kept: all of it')
  t.strictSame(await offsets({ since: 20 }), [], 'beyond the latest')
})

t.test('history refuses a bad room, limit or since', async (t) => {
  const { chat } = await setup(t)
  await t.rejects(chat.history('no/slash'), { code: 'FST_CHAT_INVALID_ROOM' })
  for (const bad of [-1, 1.5, NaN, Infinity, '3', Number.MAX_SAFE_INTEGER + 1]) {
    await t.rejects(chat.history('lobby', { limit: bad as number }), { code: 'FST_CHAT_INVALID_ARGUMENT', message: /"limit" must be an integer >= 0/ }, `limit ${String(bad)}`)
    await t.rejects(chat.history('lobby', { since: bad as number }), { code: 'FST_CHAT_INVALID_ARGUMENT', message: /"since" must be an integer >= 0/ }, `since ${String(bad)}`)
  }
  await t.rejects(chat.history('lobby', { since: null as unknown as number }), { code: 'FST_CHAT_INVALID_ARGUMENT' }, 'since null')
  await t.rejects(chat.history('lobby', { limit: '3' as unknown as number }), { message: /got "3"/ }, 'the value is shown')
})

t.test('history with before: a page of older messages, oldest first, with epoch, offset and more', async (t) => {
  const { chat, adapter } = await setup(t, 6)
  for (let i = 1; i <= 8; i++) await chat.broadcast('lobby', `m${i}`)
  const { epoch } = await adapter.broker.recent('lobby', 0)
  const page = await chat.history('lobby', { before: 9, limit: 2 })
  t.strictSame({ ...page, messages: page.messages.map((m) => m.text) }, { epoch, offset: 8, messages: ['m7', 'm8'], more: true })
  t.strictSame(await chat.history('lobby', { before: 5 }).then((p) => [p.messages.map((m) => m.offset), p.more]), [[3, 4], false], 'limit defaults to maxHistoryPage; 1 and 2 are no longer kept')
  t.strictSame(await chat.history('lobby', { before: 0, limit: 100 }), { epoch, offset: 8, messages: [], more: false })
  t.strictSame(await chat.history('nobody', { before: 10 }).then((p) => [p.messages, p.more, p.offset]), [[], false, 0])
  const [first] = (await chat.history('lobby', { before: 9, limit: 1 })).messages
  first.text = 'rewritten'
  t.equal((await chat.history('lobby', { before: 9, limit: 1 })).messages[0]?.text, 'm8', 'the messages are the caller\'s copies')
})

t.test('history with before refuses a bad before, limit or mix', async (t) => {
  const { chat } = await setup(t)
  const refuse = async (opts: unknown, what: string, message?: RegExp): Promise<void> => {
    const err = await chat.history('lobby', opts as { before: number }).then(() => null, (err: unknown) => err)
    t.ok(err instanceof TypeError, `${what}: a TypeError`)
    t.match(err, { code: 'FST_CHAT_INVALID_ARGUMENT', ...(message === undefined ? {} : { message }) }, what)
  }
  for (const before of [-1, 1.5, NaN, Infinity, '3', null, Number.MAX_SAFE_INTEGER + 1]) await refuse({ before }, `before ${String(before)}`, /"before" must be an integer >= 0/)
  for (const limit of [0, -1, 1.5, '3', null, 101]) await refuse({ before: 5, limit }, `limit ${String(limit)}`, /"limit" must be an integer from 1 to 100/)
  await refuse({ before: 5, since: 2 }, 'since and before', /"since" cannot be given with before/)
  await refuse(null, 'opts null')
  await refuse('before', 'opts a string')
  await t.rejects(chat.history('no/slash', { before: 5 }), { code: 'FST_CHAT_INVALID_ROOM' })
})

// The memory store keeps the objects it hands out: what app.chat returns
// must be copies, or a caller that changes them rewrites the history every
// later join replays.

t.test('the message broadcast resolves to is the caller\'s: changing it leaves the history alone', async (t) => {
  const { chat } = await setup(t)
  const stored = await chat.broadcast('lobby', 'original')
  stored.text = 'rewritten'
  stored.from.name = 'mallory'
  t.strictSame((await chat.history('lobby')).map((m) => [m.text, m.from.name]), [['original', 'system']], 'history unchanged')
})

t.test('the messages history returns are the caller\'s: changing them leaves the history alone', async (t) => {
  const { chat } = await setup(t)
  await chat.broadcast('lobby', 'original')
  const [first] = await chat.history('lobby')
  first.text = 'rewritten'
  t.strictSame((await chat.history('lobby')).map((m) => m.text), ['original'], 'after changing what history() returned')
  const [viaSince] = await chat.history('lobby', { since: 0 })
  viaSince.text = 'rewritten again'
  t.strictSame((await chat.history('lobby')).map((m) => m.text), ['original'], 'after changing what history({ since }) returned')
})
