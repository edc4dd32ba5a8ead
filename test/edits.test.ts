import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { connect } from '../lib/client.js'
import type { ChatConnection, ChatEvents } from '../lib/client.js'
import fastifyChat, { MemoryStore, redisAdapter, sqliteStore } from '../index.js'
import type { AuthorizeRequest, FastifyChatOptions } from '../index.js'
import type { RedisAdapterOptions } from '../lib/broker/redis/redis-adapter.js'
import type { ServerFrame } from '../lib/protocol/wire.js'
import { Client, within } from './helpers/chat.js'
import { startRedis } from './helpers/redis.js'

/** The plugin with users named by `?user=`, listening. */
async function server (t: Test, opts: FastifyChatOptions = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  await app.register(fastifyChat, {
    presenceGraceMs: 0,
    identify: (request) => {
      const { user } = request.query as { user?: string }
      return { id: user, name: user }
    },
    ...opts
  })
  t.teardown(() => app.close())
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: address.replace('http', 'ws') }
}

/** A user's socket in `lobby`, past its welcome and joined. */
async function user (t: Test, url: string, id: string, query = ''): Promise<{ client: Client, joined: Extract<ServerFrame, { type: 'joined' }> }> {
  const client = await Client.connect(url, `/chat?user=${id}${query}`)
  t.teardown(() => client.close())
  await client.expect('welcome')
  const joined = await client.expect('joined')
  return { client, joined }
}

/** The next frame that is not presence. */
async function nextChat (client: Client): Promise<ServerFrame> {
  for (let i = 0; i < 20; i++) {
    const frame = await client.next()
    if (frame.type !== 'presence' && frame.type !== 'occupancy') return frame
  }
  throw new Error('only presence frames')
}

async function sent (client: Client, text: string): Promise<number> {
  client.send({ type: 'message', room: 'lobby', text })
  const echo = await nextChat(client)
  if (echo.type !== 'message') throw new Error(`expected the echo, got ${JSON.stringify(echo)}`)
  return echo.offset
}

const backends: Array<[string, (t: Test) => Promise<FastifyChatOptions>]> = [
  ['memory', async () => ({})],
  ['sqlite', async (t) => {
    const dir = await mkdtemp(joinPath(tmpdir(), 'chat-edits-'))
    t.teardown(async () => await rm(dir, { recursive: true, force: true }))
    return { store: sqliteStore({ path: joinPath(dir, 'chat.db') }) }
  }],
  ['redis', async (t) => {
    const redis = await startRedis(t)
    return { adapter: redisAdapter({ url: redis.url } as RedisAdapterOptions) }
  }]
]

for (const [name, options] of backends) {
  t.test(`${name}: edits and deletes are delivered, echoed, replayed in joined and recovered with since`, async (t) => {
    const { url } = await server(t, await options(t))
    const { client: alice } = await user(t, url, 'alice')
    const { client: bob } = await user(t, url, 'bob')
    const first = await sent(alice, 'helo')
    const second = await sent(alice, 'oops')
    await nextChat(bob)
    await nextChat(bob)
    const { joined: before } = await user(t, url, 'carol')

    alice.send({ type: 'edit', room: 'lobby', of: first, text: 'hello', cid: 'e1' })
    const edit = { type: 'edit', room: 'lobby', offset: second + 1, from: { id: 'alice', name: 'alice' }, of: first, text: 'hello' }
    t.match(await nextChat(alice), { ...edit, cid: 'e1' }, 'the sender gets its echo, with the cid')
    t.match(await nextChat(bob), edit, 'the room gets the edit')
    alice.send({ type: 'delete', room: 'lobby', of: second, cid: 'd1' })
    const deleted = await nextChat(bob)
    t.match(deleted, { type: 'delete', room: 'lobby', offset: second + 2, of: second, from: { id: 'alice' } })
    t.notOk(Object.hasOwn(deleted, 'text'), 'a delete carries no text')
    t.match(await nextChat(alice), { type: 'delete', cid: 'd1' })

    const { joined } = await user(t, url, 'dave')
    t.match(joined.history.map((entry) => [entry.offset, entry.type, entry.of]), [[first, undefined, undefined], [second, undefined, undefined], [second + 1, 'edit', first], [second + 2, 'delete', second]])
    t.notOk(Object.hasOwn(joined.history[0] as object, 'type'), 'a message item has no type')
    t.equal(joined.history[2]?.text, 'hello')
    t.notOk(Object.hasOwn(joined.history[3] as object, 'text'), 'a delete item has no text')

    const { joined: resumed } = await user(t, url, 'carol', `&since=${before.epoch}:${before.offset}`)
    t.equal(resumed.recovered, true)
    t.strictSame(resumed.history.map((entry) => [entry.offset, entry.type ?? 'message']), [[second + 1, 'edit'], [second + 2, 'delete']], 'recovered like messages')
  })
}

t.test('only the author may edit or delete; authorize with moderate lets others', async (t) => {
  const asked: AuthorizeRequest[] = []
  const { url } = await server(t, {
    authorize: (request) => {
      if (request.action !== 'moderate') return true
      asked.push(request)
      return request.client.id === 'mod'
    }
  })
  const { client: alice } = await user(t, url, 'alice')
  const { client: bob } = await user(t, url, 'bob')
  const { client: mod } = await user(t, url, 'mod')
  const offset = await sent(alice, 'mine')
  await nextChat(bob)
  await nextChat(mod)

  bob.send({ type: 'edit', room: 'lobby', of: offset, text: 'yours now', cid: 'b1' })
  t.match(await nextChat(bob), { type: 'error', code: 'forbidden', cid: 'b1', room: 'lobby' })
  bob.send({ type: 'delete', room: 'lobby', of: offset })
  t.match(await nextChat(bob), { type: 'error', code: 'forbidden' })
  t.match(asked[0], { action: 'moderate', room: 'lobby', client: { id: 'bob' }, message: { offset, text: 'mine', from: { id: 'alice' } } })

  mod.send({ type: 'edit', room: 'lobby', of: offset, text: '[redacted]' })
  t.match(await nextChat(alice), { type: 'edit', of: offset, text: '[redacted]', from: { id: 'mod' } })
  mod.send({ type: 'delete', room: 'lobby', of: offset })
  t.match(await nextChat(alice), { type: 'delete', of: offset, from: { id: 'mod' } })
  t.match(await nextChat(bob), { type: 'edit' }, 'refusals stored nothing: the moderator\'s edit is next')
})

t.test('without authorize, others may not moderate, and an author edit needs publish', async (t) => {
  const { url } = await server(t)
  const { client: alice } = await user(t, url, 'alice')
  const { client: bob } = await user(t, url, 'bob')
  const offset = await sent(alice, 'mine')
  await nextChat(bob)
  bob.send({ type: 'delete', room: 'lobby', of: offset })
  t.match(await nextChat(bob), { type: 'error', code: 'forbidden' })

  const muted = await server(t, { authorize: (request) => request.action !== 'publish' || request.client.id !== 'eve' })
  const { client: eve } = await user(t, muted.url, 'eve')
  const said = (await muted.app.chat.broadcast('lobby', 'said before the mute', { from: { id: 'eve', name: 'eve' } })).offset
  await nextChat(eve)
  eve.send({ type: 'edit', room: 'lobby', of: said, text: 'x' })
  t.match(await nextChat(eve), { type: 'error', code: 'forbidden' }, 'her own message, but publish is refused')
  eve.send({ type: 'delete', room: 'lobby', of: said })
  t.match(await nextChat(eve), { type: 'delete', of: said }, 'a delete of her own needs no publish')
})

t.test('not_found: unknown, pruned, or not a message', async (t) => {
  const { url } = await server(t, { historySize: 2 })
  const { client: alice } = await user(t, url, 'alice')
  const first = await sent(alice, 'one')
  alice.send({ type: 'edit', room: 'lobby', of: 99, text: 'x', cid: 'n1' })
  t.match(await nextChat(alice), { type: 'error', code: 'not_found', cid: 'n1', room: 'lobby' })
  alice.send({ type: 'edit', room: 'lobby', of: first, text: 'uno' })
  const edit = await nextChat(alice)
  t.match(edit, { type: 'edit', of: first })
  alice.send({ type: 'edit', room: 'lobby', of: (edit as { offset: number }).offset, text: 'x' })
  t.match(await nextChat(alice), { type: 'error', code: 'not_found' }, 'an edit of an edit')
  await sent(alice, 'three')
  alice.send({ type: 'delete', room: 'lobby', of: first })
  t.match(await nextChat(alice), { type: 'error', code: 'not_found' }, 'pruned from the history')
})

t.test('editWindowMs refuses late edits with edit_window_expired, not deletes', async (t) => {
  const store = new MemoryStore()
  const { url } = await server(t, { store, editWindowMs: 60_000 })
  const { client: alice } = await user(t, url, 'alice')
  const { message: old } = await store.append({ room: 'lobby', ts: Date.now() - 120_000, from: { id: 'alice', name: 'alice' }, text: 'long ago' })
  const recent = await sent(alice, 'just now')
  alice.send({ type: 'edit', room: 'lobby', of: old.offset, text: 'x', cid: 'w1' })
  t.match(await nextChat(alice), { type: 'error', code: 'edit_window_expired', cid: 'w1' })
  alice.send({ type: 'edit', room: 'lobby', of: recent, text: 'just then' })
  t.match(await nextChat(alice), { type: 'edit', of: recent })
  alice.send({ type: 'delete', room: 'lobby', of: old.offset })
  t.match(await nextChat(alice), { type: 'delete', of: old.offset })
})

t.test('a retried edit (same cid) is stored once; the sender gets the stored copy back', async (t) => {
  const { url } = await server(t)
  const { client: alice } = await user(t, url, 'alice')
  const { client: bob } = await user(t, url, 'bob')
  const offset = await sent(alice, 'hi')
  await nextChat(bob)
  alice.send({ type: 'edit', room: 'lobby', of: offset, text: 'hey', cid: 'r1' })
  const echo = await nextChat(alice)
  alice.send({ type: 'edit', room: 'lobby', of: offset, text: 'hey', cid: 'r1' })
  t.strictSame(await nextChat(alice), echo, 'the same entry')
  t.match(await nextChat(bob), { type: 'edit', offset: (echo as { offset: number }).offset })
  await sent(alice, 'marker')
  t.match(await nextChat(bob), { type: 'message', text: 'marker' }, 'the retry was not delivered again')
})

t.test('onMessage sees an edit (with of) and may change or refuse it', async (t) => {
  const { url } = await server(t, {
    onMessage: (message) => message.of === undefined ? true : message.text === 'bad' ? false : { ...message, text: message.text.toUpperCase() }
  })
  const { client: alice } = await user(t, url, 'alice')
  const offset = await sent(alice, 'hi')
  alice.send({ type: 'edit', room: 'lobby', of: offset, text: 'bad' })
  t.match(await nextChat(alice), { type: 'error', code: 'rejected' })
  alice.send({ type: 'edit', room: 'lobby', of: offset, text: 'hey' })
  t.match(await nextChat(alice), { type: 'edit', text: 'HEY' })
})

t.test('bad edit and delete frames get their codes', async (t) => {
  const { url } = await server(t, { maxMessageLength: 10 })
  const { client: alice } = await user(t, url, 'alice')
  const cases: Array<[object, string]> = [
    [{ type: 'edit', room: 'no such!', of: 1, text: 'x' }, 'invalid_room'],
    [{ type: 'delete', of: 1 }, 'invalid_room'],
    [{ type: 'edit', room: 'lobby', of: 0, text: 'x' }, 'invalid_message'],
    [{ type: 'delete', room: 'lobby', of: '1' }, 'invalid_message'],
    [{ type: 'delete', room: 'lobby', of: 1.5 }, 'invalid_message'],
    [{ type: 'edit', room: 'lobby', of: 1 }, 'invalid_message'],
    [{ type: 'edit', room: 'lobby', of: 1, text: ' ' }, 'empty_text'],
    [{ type: 'edit', room: 'lobby', of: 1, text: 'x'.repeat(11) }, 'text_too_long'],
    [{ type: 'edit', room: 'elsewhere', of: 1, text: 'x' }, 'not_in_room'],
    [{ type: 'delete', room: 'elsewhere', of: 1 }, 'not_in_room']
  ]
  for (const [frame, code] of cases) {
    alice.send({ ...frame, cid: 'bad' })
    t.match(await nextChat(alice), { type: 'error', code, cid: 'bad' }, JSON.stringify(frame))
  }
})

/** The next `event` of `conn`; start waiting before you act. */
async function event<E extends keyof ChatEvents> (conn: ChatConnection, name: E): Promise<ChatEvents[E]> {
  let off = (): void => {}
  const seen = new Promise<ChatEvents[E]>((resolve) => { off = conn.on(name, resolve) })
  try {
    return await within(seen, 3000, `a ${name} event`)
  } finally {
    off()
  }
}

t.test('the typed client edits and deletes, gets the events, keeps the applied view, and a new client replays it', async (t) => {
  const { url } = await server(t)
  const open = async (id: string): Promise<ChatConnection> => {
    const conn = connect(`${url}/chat?user=${id}`, { WebSocket, backoff: { initialMs: 5, maxMs: 20 } })
    t.teardown(() => conn.close())
    await event(conn, 'joined')
    return conn
  }
  const alice = await open('alice')
  const bob = await open('bob')
  const heard = event(bob, 'message')
  alice.send('helo', 'lobby')
  const { offset } = await heard

  const edited = event(bob, 'edit')
  const echoed = event(alice, 'edit')
  const cid = alice.edit('lobby', offset, 'hello')
  t.match(await echoed, { cid, of: offset, text: 'hello' })
  t.match(await edited, { type: 'edit', of: offset, text: 'hello', from: { id: 'alice' } })
  t.match(bob.message('lobby', offset), { text: 'hello', edited: { by: { id: 'alice' }, offset: offset + 1 } })

  const refused = event(bob, 'error')
  bob.delete('lobby', offset)
  t.match(await refused, { code: 'forbidden' })
  const deleted = event(bob, 'delete')
  alice.delete('lobby', offset)
  t.match(await deleted, { type: 'delete', of: offset })
  t.match(bob.view('lobby').find((m) => m.offset === offset), { text: '', deleted: { by: { id: 'alice' } } })

  const carol = connect(`${url}/chat?user=carol`, { WebSocket, backoff: { initialMs: 5, maxMs: 20 } })
  t.teardown(() => carol.close())
  const replayed = event(carol, 'delete')
  await event(carol, 'joined')
  t.match(await replayed, { of: offset }, 'the delete follows the joined')
  t.match(carol.message('lobby', offset), { text: '', deleted: {} }, 'the view applied the replay')
  const again = event(bob, 'message')
  alice.send('second', 'lobby')
  const second = (await again).offset
  const tab = connect(`${url}/chat?user=alice`, { WebSocket, backoff: { initialMs: 5, maxMs: 20 } })
  t.teardown(() => tab.close())
  // Its joined replays alice's first edit too: wait for the one of `second`.
  const queuedEcho = within(new Promise<ChatEvents['edit']>((resolve) => tab.on('edit', (frame) => { if (frame.of === second) resolve(frame) })), 3000, 'the queued edit')
  const queued = tab.edit('lobby', second, 'sent once open')
  t.match(await queuedEcho, { cid: queued, of: second, text: 'sent once open' }, 'an edit made before the socket opened waits for it')
  t.throws(() => alice.edit('lobby', 0, 'x'), TypeError)
  t.throws(() => alice.delete('no room!', 1), TypeError)
  alice.close()
  t.throws(() => alice.edit('lobby', offset, 'x'), { message: 'chat connection is closed' })
  t.strictSame(alice.view('lobby'), [], 'a closed connection holds nothing')
})

t.test('a store that cannot read the message answers unavailable, and stores nothing', async (t) => {
  class Unreadable extends MemoryStore {
    override async entry (): Promise<null> {
      throw new Error('store away')
    }
  }
  const { url } = await server(t, { store: new Unreadable() })
  const { client: alice } = await user(t, url, 'alice')
  const offset = await sent(alice, 'hi')
  alice.send({ type: 'delete', room: 'lobby', of: offset, cid: 'u1' })
  t.match(await nextChat(alice), { type: 'error', code: 'unavailable', cid: 'u1', room: 'lobby' })
  t.equal(await sent(alice, 'next'), offset + 1, 'nothing was stored')
})
