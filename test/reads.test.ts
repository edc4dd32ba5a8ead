// Read positions end to end: real sockets, the memory store and an SQLite file.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat, { MemoryStore, sqliteStore } from '../index.js'
import type { FastifyChatOptions, HistoryStore, NewMessage } from '../index.js'
import type { ServerFrame } from '../lib/protocol/wire.js'
import { Client } from './helpers/chat.js'

type Joined = Extract<ServerFrame, { type: 'joined' }>

/** `?user=bob` is user `bob`; no user, a guest. */
function identify (request: { query: unknown }): { id: string, name: string } | Record<string, never> {
  const { user } = request.query as { user?: unknown }
  return typeof user === 'string' && user !== '' ? { id: user, name: user } : {}
}

async function start (t: Test, opts: FastifyChatOptions = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  await app.register(fastifyChat, { presenceGraceMs: 0, defaultRoom: null, identify, rateLimit: false, ...opts })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

async function connect (t: Test, url: string, user?: string): Promise<Client> {
  const client = await Client.connect(url, user === undefined ? '/chat' : `/chat?user=${user}`)
  t.teardown(() => client.ws.terminate())
  await client.expect('welcome')
  return client
}

async function enter (client: Client, room: string): Promise<Joined> {
  client.send({ type: 'join', room })
  const joined = await client.expect('joined')
  if (joined.room !== room) throw new Error(`joined ${joined.room}, not ${room}`)
  return joined
}

/** Sends `count` messages to `room` and waits for their echoes. */
async function say (client: Client, room: string, count: number, text = 'hi'): Promise<number> {
  let last = 0
  for (let i = 0; i < count; i++) {
    client.send({ type: 'message', room, text: `${text} ${i}` })
    last = (await until(client, 'message')).offset
  }
  return last
}

/** Skips frames until one of `type` (each frame waited for with the client's bound). */
async function until<T extends ServerFrame['type']> (client: Client, type: T): Promise<Extract<ServerFrame, { type: T }>> {
  for (let i = 0; i < 100; i++) {
    const frame = await client.next(`a ${type} frame`)
    if (frame.type === type) return frame as Extract<ServerFrame, { type: T }>
  }
  throw new Error(`no ${type} frame within 100 frames`)
}

/** Proves no `read` frame is on its way to `clients`: a message from `from` comes first, with presence at most before it. */
async function marker (t: Test, from: Client, clients: Client[], room: string): Promise<void> {
  from.send({ type: 'message', room, text: 'marker' })
  for (const client of clients) {
    let frame = await client.next()
    for (let i = 0; frame.type === 'presence' && i < 10; i++) frame = await client.next()
    t.match(frame, { type: 'message', text: 'marker' }, 'no read frame came before the marker')
  }
}

t.test('a read moves the position, the user\'s other sockets in the room hear it, and joined carries read and unread', async (t) => {
  const { app, url } = await start(t)
  const bob = await connect(t, url, 'bob')
  await enter(bob, 'lobby')
  await say(bob, 'lobby', 5)
  const tab1 = await connect(t, url, 'alice')
  const tab2 = await connect(t, url, 'alice')
  t.match(await enter(tab1, 'lobby'), { offset: 5, read: 0, unread: 5 }, 'nothing read: all five unread')
  t.match(await enter(tab2, 'lobby'), { read: 0, unread: 5 })

  tab1.send({ type: 'read', room: 'lobby', offset: 3 })
  t.strictSame(await tab2.expect('read'), { type: 'read', room: 'lobby', offset: 3 }, 'the other tab hears it')
  tab1.send({ type: 'read', room: 'lobby', offset: 2 })
  tab1.send({ type: 'read', room: 'lobby', offset: 3 })
  await marker(t, bob, [tab1, tab2], 'lobby')

  tab2.send({ type: 'read', room: 'lobby', offset: 1000 })
  t.strictSame(await tab1.expect('read'), { type: 'read', room: 'lobby', offset: 6 }, 'beyond the latest: clamped to it (6, the marker)')

  // Own messages are never unread.
  await say(tab1, 'lobby', 2, 'mine')
  await say(bob, 'lobby', 3, 'theirs')
  const tab3 = await connect(t, url, 'alice')
  t.match(await enter(tab3, 'lobby'), { offset: 11, read: 6, unread: 3 }, 'three of bob\'s after it, not alice\'s own two')
  t.strictSame(await app.chat.unread('alice'), { lobby: 3 })
  t.strictSame(await app.chat.unread('bob'), {}, 'bob has no positions')
  t.strictSame(await app.chat.unread('nobody'), {})
  await t.rejects(app.chat.unread(''), { code: 'FST_CHAT_INVALID_ARGUMENT' })
})

t.test('bad read frames get their codes; a read outside the room gets not_in_room', async (t) => {
  const { url } = await start(t)
  const alice = await connect(t, url, 'alice')
  await enter(alice, 'lobby')
  const cases: Array<[object, string]> = [
    [{ type: 'read', room: 'lobby' }, 'invalid_message'],
    [{ type: 'read', room: 'lobby', offset: -1 }, 'invalid_message'],
    [{ type: 'read', room: 'lobby', offset: 1.5 }, 'invalid_message'],
    [{ type: 'read', room: 'lobby', offset: '3' }, 'invalid_message'],
    [{ type: 'read', room: 'lobby', offset: 2 ** 53 }, 'invalid_message'],
    [{ type: 'read', room: 'no room!', offset: 1 }, 'invalid_room'],
    [{ type: 'read', offset: 1 }, 'invalid_room'],
    [{ type: 'read', room: 'elsewhere', offset: 1 }, 'not_in_room']
  ]
  for (const [frame, code] of cases) {
    alice.send(frame)
    t.match(await alice.expect('error'), { code }, JSON.stringify(frame))
  }
})

t.test('a client sending reads in a burst costs at most one store write per room at a time, the furthest next', async (t) => {
  // Holds every write until the test opens it, as a slow disk or network would.
  class Gated extends MemoryStore {
    readonly writes: number[] = []
    open: () => void = () => {}
    readonly #gate = new Promise<void>((resolve) => { this.open = resolve })
    override async markRead (room: string, userId: string, offset: number): Promise<number | null> {
      this.writes.push(offset)
      await this.#gate
      return await super.markRead(room, userId, offset)
    }
  }
  const store = new Gated({ size: 100 })
  const { url } = await start(t, { store })
  const bob = await connect(t, url, 'bob')
  await enter(bob, 'lobby')
  await say(bob, 'lobby', 50)
  const tab1 = await connect(t, url, 'alice')
  const tab2 = await connect(t, url, 'alice')
  await enter(tab1, 'lobby')
  await enter(tab2, 'lobby')
  for (let offset = 1; offset <= 50; offset++) tab1.send({ type: 'read', room: 'lobby', offset })
  // Frames are handled in order: once this is answered, every read above was.
  tab1.send({ type: 'members', room: 'lobby' })
  await until(tab1, 'members')
  t.strictSame(store.writes, [1], 'one write on its way; the others wait')
  store.open()
  t.equal((await tab2.expect('read')).offset, 1)
  t.equal((await tab2.expect('read')).offset, 50, 'then the furthest, once')
  t.strictSame(store.writes, [1, 50], 'two writes for 50 frames')
  t.equal(await store.readPosition('lobby', 'alice'), 50)
})

t.test('guests keep positions for their socket only: nothing is stored', async (t) => {
  const { app, url } = await start(t)
  const bob = await connect(t, url, 'bob')
  await enter(bob, 'lobby')
  await say(bob, 'lobby', 4)
  const guest = await connect(t, url)
  const other = await connect(t, url)
  t.match(await enter(guest, 'lobby'), { read: 0, unread: 4 })
  await enter(other, 'lobby')
  guest.send({ type: 'read', room: 'lobby', offset: 3 })
  // A rejoin of the same socket answers with its own position, once the read above is in.
  guest.send({ type: 'join', room: 'lobby' })
  t.match(await until(guest, 'joined'), { read: 3, unread: 1 }, 'the socket remembers its own')
  t.match(await enter(other, 'lobby'), { read: 0, unread: 4 }, 'another guest socket does not')
  t.strictSame(await app.chat.unread('guest'), {})
  await marker(t, bob, [guest, other], 'lobby')
})

t.test('typed entries (edits, deletes) are not unread: simulated through the store, the only way to write one here', async (t) => {
  const store = new MemoryStore({ size: 100 })
  const { url, app } = await start(t, { store })
  const from = { id: 'bob', name: 'bob' }
  await store.append({ room: 'lobby', ts: 1, from, text: 'one' })
  await store.append({ room: 'lobby', ts: 2, from, text: 'two' })
  await store.append({ room: 'lobby', ts: 3, from, text: 'one, fixed', type: 'edit', of: 1 } as unknown as NewMessage)
  await store.append({ room: 'lobby', ts: 4, from, text: '', type: 'delete', of: 2 } as unknown as NewMessage)
  await store.append({ room: 'lobby', ts: 5, from, text: 'three' })
  await store.markRead('lobby', 'alice', 1)
  const alice = await connect(t, url, 'alice')
  t.match(await enter(alice, 'lobby'), { offset: 5, read: 1, unread: 2 }, 'offsets 2 and 5; not the edit or the delete')
  t.strictSame(await app.chat.unread('alice'), { lobby: 2 })
})

t.test('the count saturates at historySize; a position beyond the room (history lost) reads as its latest', async (t) => {
  const store = new MemoryStore({ size: 3 })
  const { url } = await start(t, { store, historySize: 3 })
  const from = { id: 'bob', name: 'bob' }
  for (let i = 0; i < 10; i++) await store.append({ room: 'lobby', ts: i, from, text: `m${i}` })
  await store.markRead('other', 'alice', 0)
  const alice = await connect(t, url, 'alice')
  t.match(await enter(alice, 'lobby'), { offset: 10, read: 0, unread: 3 }, 'ten unread, counted up to historySize')
  alice.send({ type: 'join', room: 'lobby', since: { epoch: 'gone', offset: 0 } })
  t.match(await alice.expect('joined'), { read: 0, unread: 3 })
})

t.test('positions survive a restart with SQLite', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fastify-chat-reads-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'chat.db')
  const first = await start(t, { store: sqliteStore({ path }) })
  const bob = await connect(t, first.url, 'bob')
  await enter(bob, 'lobby')
  await say(bob, 'lobby', 6)
  const alice = await connect(t, first.url, 'alice')
  const other = await connect(t, first.url, 'alice')
  await enter(alice, 'lobby')
  await enter(other, 'lobby')
  alice.send({ type: 'read', room: 'lobby', offset: 4 })
  t.equal((await other.expect('read')).offset, 4)
  await first.app.close()

  const second = await start(t, { store: sqliteStore({ path }) })
  const again = await connect(t, second.url, 'alice')
  t.match(await enter(again, 'lobby'), { offset: 6, read: 4, unread: 2 }, 'the position and the count, from the file')
  t.strictSame(await second.app.chat.unread('alice'), { lobby: 2 })
})

t.test('a store that fails a read position write answers unavailable', async (t) => {
  class Failing extends MemoryStore {
    override async markRead (): Promise<number | null> {
      throw new Error('disk on fire')
    }
  }
  const store: HistoryStore = new Failing({ size: 10 })
  const { url } = await start(t, { store })
  const alice = await connect(t, url, 'alice')
  await enter(alice, 'lobby')
  await say(alice, 'lobby', 1)
  alice.send({ type: 'read', room: 'lobby', offset: 1 })
  t.match(await alice.expect('error'), { code: 'unavailable', room: 'lobby' })
})
