import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import t from 'tap'
import WebSocket from 'ws'
import { connect } from '../lib/client.js'
import type { ChatConnection, ConnectOptions, MembersError, WebSocketLike } from '../lib/client.js'
import type { AdapterContext, AdapterNode } from '../lib/broker/adapter.js'
import { LocalAdapter } from '../lib/broker/local-adapter.js'
import { MAX_CURSOR_LENGTH, MAX_MEMBERS_PAGE } from '../lib/protocol/wire.js'
import type { ChatMessage, ClientFrame, JoinedFrame, MembersFrame, MembersRequest, ServerFrame, User } from '../lib/protocol/wire.js'
import { MemoryStore } from '../lib/stores/memory-store.js'
import type { AppendResult, HistoryPage, HistoryStore, NewMessage } from '../lib/stores/history-store.js'
import { join, listen, within } from './helpers/chat.js'
import { waitFor } from './helpers/client-events.js'
import { withFakeClock } from './helpers/fake-clock.js'

const fast: ConnectOptions = { WebSocket, backoff: { initialMs: 5, maxMs: 20 } }

/** Every message text the connection would show, from `joined` history and live messages. */
function shown (conn: ChatConnection): string[] {
  const texts: string[] = []
  conn.on('joined', (frame) => texts.push(...frame.history.map((m) => m.text)))
  conn.on('message', (frame) => texts.push(frame.text))
  return texts
}

function timers (): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
}

t.test('connects, gets welcome and joined, and joins the rooms it was given', async (t) => {
  const { url } = await listen(t)
  const conn = connect(`${url}/chat?name=alice&room=lobby`, { ...fast, rooms: ['news', 'lobby'] })
  t.teardown(() => conn.close())
  t.equal(conn.status, 'connecting')
  const welcome = waitFor(conn, 'welcome')
  const news = waitFor(conn, 'joined', (f) => f.room === 'news')
  t.equal((await welcome).name, 'alice')
  const joined = await news
  t.same(joined.users.map((u) => u.name), ['alice'])
  t.equal(conn.status, 'open')
  t.equal(conn.name, 'alice')
  t.equal(conn.id, (await welcome).id)
  t.same(conn.rooms.sort(), ['lobby', 'news'])
})

t.test('rooms are joined besides the server\'s default room when the URL names none', async (t) => {
  const { app, url } = await listen(t)
  const conn = connect(`${url}/chat?name=alice`, { ...fast, rooms: ['news', 'sport'] })
  t.teardown(() => conn.close())
  const joined = new Set<string>()
  const all = new Promise<void>((resolve) => conn.on('joined', (frame) => {
    joined.add(frame.room)
    if (joined.size === 3) resolve()
  }))
  await within(all, 3000, 'three rooms joined')
  t.same([...joined].sort(), ['lobby', 'news', 'sport'])

  // A reconnect keeps all three, the default room now by name.
  const rejoined = new Set<string>()
  const back = new Promise<void>((resolve) => conn.on('joined', (frame) => {
    rejoined.add(frame.room)
    if (rejoined.size === 3) resolve()
  }))
  for (const socket of app.websocketServer.clients) socket.terminate()
  await within(back, 3000, 'three rooms joined again')
  t.same(conn.rooms.sort(), ['lobby', 'news', 'sport'])
})

t.test('rooms are all there is when the server has no default room', async (t) => {
  const { url } = await listen(t, { defaultRoom: null })
  const conn = connect(`${url}/chat?name=alice`, { ...fast, rooms: ['news'] })
  t.teardown(() => conn.close())
  await waitFor(conn, 'joined', (f) => f.room === 'news')
  // A marker: a room joined after news is confirmed after anything already on its way.
  const marker = waitFor(conn, 'joined', (f) => f.room === 'marker')
  conn.join('marker')
  await marker
  t.same(conn.rooms.sort(), ['marker', 'news'])
})

t.test('resume: a later connection with the token is the same user', async (t) => {
  const { url } = await listen(t)
  const first = connect(`${url}/chat?name=alice`, fast)
  t.teardown(() => first.close())
  t.equal(first.resumeToken, null, 'none before welcome')
  const welcome = await waitFor(first, 'welcome')
  t.type(first.resumeToken, 'string')
  t.equal(first.resumeToken, welcome.resume)
  const token = first.resumeToken as string
  first.close()

  const again = connect(`${url}/chat?name=alice`, { ...fast, resume: token })
  t.teardown(() => again.close())
  t.equal((await waitFor(again, 'welcome')).id, welcome.id, 'same id as before')
  t.equal(again.resumeToken, token)

  const forged = connect(`${url}/chat?name=alice`, { ...fast, resume: `${welcome.id}.not-the-mac` })
  t.teardown(() => forged.close())
  t.not((await waitFor(forged, 'welcome')).id, welcome.id, 'a token the server did not sign gets a new id')
})

t.test('resume: no token when identify gives the id', async (t) => {
  const { url } = await listen(t, { identify: async () => ({ id: 'user-1', name: 'alice' }) })
  const conn = connect(`${url}/chat`, fast)
  t.teardown(() => conn.close())
  t.equal((await waitFor(conn, 'welcome')).id, 'user-1')
  t.equal(conn.resumeToken, null)
})

t.test('sends with a cid that comes back on the message', async (t) => {
  const { url } = await listen(t)
  const bob = await join(url, '?name=bob')
  const alice = connect(`${url}/chat?name=alice`, fast)
  t.teardown(() => alice.close())
  await waitFor(alice, 'joined')

  const echoed = waitFor(alice, 'message')
  const cid = alice.send('hello')
  t.match(cid, /^[0-9a-f]{24}$/)
  const message = await echoed
  t.equal(message.cid, cid)
  t.equal(message.text, 'hello')
  t.equal(message.from.id, alice.id)

  t.equal((await bob.expect('presence')).user.name, 'alice')
  const received = await bob.expect('message')
  t.same([received.text, received.cid, received.from.name], ['hello', cid, 'alice'])
})

t.test('reports error frames with the cid of the failed message', async (t) => {
  const { url } = await listen(t)
  const conn = connect(`${url}/chat`, fast)
  t.teardown(() => conn.close())
  await waitFor(conn, 'joined')
  const failed = waitFor(conn, 'error')
  const cid = conn.send('anyone?', 'elsewhere')
  t.match(await failed, { code: 'not_in_room', cid })
})

t.test('joins, leaves and renames', async (t) => {
  const { url } = await listen(t)
  const conn = connect(`${url}/chat?name=alice`, fast)
  t.teardown(() => conn.close())
  await waitFor(conn, 'joined', (f) => f.room === 'lobby')

  const joined = waitFor(conn, 'joined', (f) => f.room === 'news')
  conn.join('news')
  await joined
  t.same(conn.rooms, ['lobby', 'news'])

  const left = waitFor(conn, 'left')
  conn.leave('lobby')
  t.equal((await left).room, 'lobby')
  t.same(conn.rooms, ['news'])

  const renamed = waitFor(conn, 'renamed')
  conn.rename('alicia')
  t.same(await renamed, { type: 'renamed', name: 'alicia', previous: 'alice' })
  t.equal(conn.name, 'alicia')

  t.throws(() => conn.join('no spaces'), TypeError)
  t.throws(() => conn.send('hi', '../etc'), TypeError)
})

t.test('reconnects after a drop and resumes every room exactly once, in order', async (t) => {
  // Alice's reconnect waits at this gate, so what Bob says meanwhile surely happens while she is away.
  let gate: Promise<void> | null = null
  const { app, url } = await listen(t, {
    identify: async (request) => {
      if ((request.query as { name?: string }).name === 'alice') await gate
      return {}
    }
  })
  const alice = connect(`${url}/chat?name=alice&room=lobby`, fast)
  t.teardown(() => alice.close())
  const texts = shown(alice)
  const statuses: string[] = []
  await waitFor(alice, 'joined')
  alice.on('status', (status) => statuses.push(status))

  const bob = await join(url, '?name=bob&room=lobby')
  const one = waitFor(alice, 'message')
  bob.send('one')
  await one

  let release = (): void => {}
  gate = new Promise((resolve) => { release = resolve })
  const dropped = waitFor(alice, 'status', (s) => s === 'reconnecting')
  for (const socket of app.websocketServer.clients) socket.terminate()
  await dropped

  const bob2 = await join(url, '?name=bob&room=lobby')
  for (const text of ['two', 'three']) {
    bob2.send(text)
    await bob2.expect('message')
  }
  const cid = alice.send('while away')
  t.equal(alice.status, 'reconnecting')

  const rejoined = waitFor(alice, 'joined')
  const opened = waitFor(alice, 'status', (s) => s === 'open')
  release()
  const frame = await rejoined
  await opened
  t.equal(frame.recovered, true)
  t.same(frame.history.map((m) => m.text), ['two', 'three'])

  t.equal((await bob2.expect('presence')).event, 'join')
  const away = await bob2.expect('message')
  t.same([away.text, away.cid], ['while away', cid])
  const four = waitFor(alice, 'message', (m) => m.text === 'four')
  bob2.send('four')
  await four
  // Bob's own echo of 'four' comes right after Alice's message: nothing in between.
  t.equal((await bob2.expect('message')).text, 'four')

  t.same(texts, ['one', 'two', 'three', 'while away', 'four'])
  t.same(statuses, ['reconnecting', 'open'])
})

t.test('a send whose echo was lost is retried with its cid and broadcast once', async (t) => {
  // A store that drops every socket right after storing 'unclear': the message
  // is in, but the sender never sees it come back.
  class DroppingStore extends MemoryStore {
    override async append (message: NewMessage): Promise<AppendResult> {
      const stored = await super.append(message)
      if (message.text === 'unclear') for (const socket of app.websocketServer.clients) socket.terminate()
      return stored
    }
  }
  const { app, url } = await listen(t, { store: new DroppingStore() })
  const alice = connect(`${url}/chat?name=alice&room=lobby`, fast)
  t.teardown(() => alice.close())
  const texts = shown(alice)
  await waitFor(alice, 'joined')

  const cid = alice.send('unclear')
  await waitFor(alice, 'status', (s) => s === 'reconnecting')
  const bob = await join(url, '?name=bob')
  await waitFor(alice, 'status', (s) => s === 'open')
  // Alice's reconnect replays the stored message and resends it; the server keeps it single.
  const after = waitFor(alice, 'message', (m) => m.text === 'after')
  bob.send('after')
  await after
  const seenByBob = []
  for (let frame = await bob.next(); ; frame = await bob.next()) {
    if (frame.type === 'message') seenByBob.push(frame.text)
    if (frame.type === 'message' && frame.text === 'after') break
  }
  t.same(seenByBob, ['after'], 'bob, who joined after it was stored, gets no second copy live')
  t.same(texts, ['unclear', 'after'], 'alice shows it once')
  const history = await app.chat.history('lobby')
  t.same(history.map((m) => [m.text, m.cid ?? null]), [['unclear', cid], ['after', null]], 'stored once')
})

t.test('queues while not open, up to maxQueue', async (t) => {
  const { url } = await listen(t)
  const conn = connect(`${url}/chat`, { ...fast, maxQueue: 2 })
  t.teardown(() => conn.close())
  const texts = shown(conn)
  const first = conn.send('first')
  const second = conn.send('second')
  t.throws(() => conn.send('third'), { message: /queue is full/ })

  const last = waitFor(conn, 'message', (m) => m.cid === second)
  await last
  t.same(texts, ['first', 'second'])
  t.not(first, second)
})

t.test('close() ends with status closed and leaves no timer behind', async (t) => {
  const { app, url } = await listen(t)
  const conn = connect(`${url}/chat`, { WebSocket, backoff: { initialMs: 3_600_000, maxMs: 3_600_000 } })
  await waitFor(conn, 'joined')
  const dropped = waitFor(conn, 'status', (s) => s === 'reconnecting')
  for (const socket of app.websocketServer.clients) socket.terminate()
  await dropped

  const before = timers()
  const closed = waitFor(conn, 'status')
  const over = waitFor(conn, 'closed')
  conn.close()
  t.equal(await closed, 'closed')
  t.strictSame(await over, { code: 1000, reason: 'client closed' }, 'one event for "this connection is over"')
  t.equal(conn.status, 'closed')
  t.equal(timers(), before - 1, 'the reconnect timer is cleared')
  t.throws(() => conn.send('late'), { message: /closed/ })
  conn.close()
  t.equal(conn.status, 'closed', 'closing twice is harmless')
})

t.test('close() while open closes the socket', async (t) => {
  const { url } = await listen(t)
  const bob = await join(url, '?name=bob')
  const alice = connect(`${url}/chat?name=alice`, fast)
  await waitFor(alice, 'joined')
  t.equal((await bob.expect('presence')).event, 'join')
  alice.close()
  t.match(await bob.expect('presence'), { event: 'leave', user: { name: 'alice' } })
  t.same(alice.rooms, [])
})

t.test('rejects bad options', async (t) => {
  t.throws(() => connect('ws://127.0.0.1:1/chat', { ...fast, backoff: { initialMs: 0, maxMs: 10 } }), TypeError)
  t.throws(() => connect('ws://127.0.0.1:1/chat', { ...fast, backoff: { initialMs: 10, maxMs: 5 } }), TypeError)
  t.throws(() => connect('ws://127.0.0.1:1/chat', { ...fast, maxQueue: -1 }), TypeError)
  t.throws(() => connect('ws://127.0.0.1:1/chat?room=bad%20room', fast), TypeError)
  t.throws(() => connect('ws://127.0.0.1:1/chat', { ...fast, rooms: ['bad room'] }), TypeError)
  // @ts-expect-error what a JavaScript caller may pass
  t.throws(() => connect('ws://127.0.0.1:1/chat', { ...fast, params: { token: 'x' } }), TypeError)

  // Node 22 has a global WebSocket; hide it to check the message for Node 20.
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket')
  Reflect.deleteProperty(globalThis, 'WebSocket')
  try {
    t.throws(() => connect('ws://127.0.0.1:1/chat'), { name: 'TypeError', message: /pass \{ WebSocket \}/ })
  } finally {
    if (saved !== undefined) Object.defineProperty(globalThis, 'WebSocket', saved)
  }
})

/** A scripted socket, to replay frame sequences a live server only produces under races. */
function fakeSockets () {
  const sockets: FakeSocket[] = []
  let created: ((socket: FakeSocket) => void) | null = null
  class FakeSocket implements WebSocketLike {
    readonly sent: ClientFrame[] = []
    onmessage: ((event: never) => void) | null = null
    onclose: ((event: never) => void) | null = null
    onerror: ((event: never) => void) | null = null
    constructor (readonly url: string) {
      sockets.push(this)
      created?.(this)
    }

    send (data: string): void { this.sent.push(JSON.parse(data)) }
    close (): void {}
    receive (frame: ServerFrame | string): void {
      const data = typeof frame === 'string' ? frame : JSON.stringify(frame)
      ;(this.onmessage as unknown as (event: { data: unknown }) => void)({ data })
    }

    drop (event: { code?: number, reason?: string } = {}): void { (this.onclose as unknown as (event: object) => void)(event) }
  }
  const next = async (): Promise<FakeSocket> => await within(new Promise((resolve) => { created = resolve }), 3000, 'a new socket')
  return { FakeSocket, sockets, next }
}

t.test('shows nothing twice and resumes from the highest offset seen', async (t) => {
  const { FakeSocket, sockets, next } = fakeSockets()
  const conn = connect('ws://chat.test/chat?room=lobby&since=e1:1', { WebSocket: FakeSocket, backoff: { initialMs: 1, maxMs: 1 } })
  t.teardown(() => conn.close())
  const texts = shown(conn)
  const recovered: boolean[] = []
  conn.on('joined', (frame) => recovered.push(frame.recovered))
  const [socket] = sockets as [InstanceType<typeof FakeSocket>]
  t.equal(new URL(socket.url).searchParams.get('since'), 'e1:1')

  const from = { id: 'u1', name: 'bob' }
  const message = (offset: number) => ({ room: 'lobby', offset, ts: 0, from, text: `m${offset}` })
  socket.receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'guest' })
  socket.receive({ type: 'joined', room: 'lobby', epoch: 'e1', offset: 2, recovered: true, history: [message(2)], users: [], count: 0 })
  socket.receive({ type: 'message', ...message(2) })
  socket.receive({ type: 'message', ...message(3) })
  socket.receive('not json')
  conn.join('lobby')
  t.same(socket.sent.at(-1), { type: 'join', room: 'lobby', since: { epoch: 'e1', offset: 3 } })
  // The replay of a join while in the room overlaps what arrived live.
  socket.receive({ type: 'joined', room: 'lobby', epoch: 'e1', offset: 4, recovered: true, history: [message(3), message(4)], users: [], count: 0 })
  socket.receive({ type: 'message', ...message(4) })
  t.same(texts, ['m2', 'm3', 'm4'])

  // A new epoch (the server's store restarted): offsets start over and the gap is reported.
  const reconnected = next()
  socket.drop()
  conn.rename('carol')
  const socket2 = await reconnected
  const params = new URL(socket2.url).searchParams
  t.same([params.get('room'), params.get('since'), params.get('name')], ['lobby', 'e1:4', 'carol'])
  socket2.receive({ type: 'welcome', clientId: 'c1', id: 'me2', name: 'carol' })
  socket2.receive({ type: 'joined', room: 'lobby', epoch: 'e2', offset: 1, recovered: false, history: [message(1)], users: [], count: 0 })
  socket2.receive({ type: 'message', ...message(2) })
  t.same(texts, ['m2', 'm3', 'm4', 'm1', 'm2'])
  t.same(recovered, [true, true, false])
  t.equal(conn.status, 'open')
})

t.test('a throwing listener is reported and the others still run', async (t) => {
  const { FakeSocket, sockets } = fakeSockets()
  const conn = connect('ws://chat.test/chat', { WebSocket: FakeSocket })
  t.teardown(() => conn.close())
  const reported: Array<() => void> = []
  const queueMicrotask = globalThis.queueMicrotask
  globalThis.queueMicrotask = (task) => { reported.push(task) }
  t.teardown(() => { globalThis.queueMicrotask = queueMicrotask })

  const calls: string[] = []
  const broken = (): void => { throw new Error('listener bug') }
  conn.on('welcome', broken)
  conn.on('welcome', (frame) => calls.push(frame.id))
  const [socket] = sockets as [InstanceType<typeof FakeSocket>]
  socket.receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'guest' })
  t.same(calls, ['me'])
  t.equal(conn.status, 'open')
  t.equal(reported.length, 1)
  t.throws(() => reported[0]?.(), { message: 'listener bug' })

  conn.off('welcome', broken)
  socket.receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'guest' })
  t.equal(reported.length, 1, 'off() removed it')

  // Closing from a listener wins over the rest of the frame's handling.
  conn.on('welcome', () => conn.close())
  socket.receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'guest' })
  t.equal(conn.status, 'closed')
})

t.test('a joined it did not ask for is a reset: offsets start over from it, and nothing after it is dropped', async (t) => {
  const { FakeSocket, sockets } = fakeSockets()
  const conn = connect('ws://chat.test/chat?room=lobby', { WebSocket: FakeSocket })
  t.teardown(() => conn.close())
  const texts = shown(conn)
  const events: string[] = []
  conn.on('reset', (frame) => events.push(`reset ${frame.epoch}`))
  conn.on('joined', (frame) => events.push(`joined ${frame.epoch}`))
  const [socket] = sockets as [InstanceType<typeof FakeSocket>]
  const from = { id: 'u1', name: 'bob' }
  const message = (offset: number, text = `m${offset}`): ChatMessage => ({ room: 'lobby', offset, ts: 0, from, text })
  socket.receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'guest' })
  socket.receive({ type: 'joined', room: 'lobby', epoch: 'e1', offset: 5, recovered: false, history: [message(5)], users: [], count: 0 })
  conn.join('lobby')
  socket.receive({ type: 'joined', room: 'lobby', epoch: 'e1', offset: 6, recovered: true, history: [message(6)], users: [], count: 0 })
  t.same(events, ['joined e1', 'joined e1'], 'the answers to the URL\'s join and to join() are no reset')

  socket.receive({ type: 'joined', room: 'lobby', epoch: 'e2', offset: 1, recovered: false, history: [message(1, 'n1')], users: [], count: 0 })
  t.same(events.slice(2), ['reset e2', 'joined e2'], 'reset, then joined as for any other')
  socket.receive({ ...message(2, 'n2'), type: 'message' })
  socket.receive({ ...message(2, 'n2'), type: 'message' })
  t.same(texts, ['m5', 'm6', 'n1', 'n2'], 'below the old offsets, and still once')
  conn.join('lobby')
  t.same(socket.sent.at(-1), { type: 'join', room: 'lobby', since: { epoch: 'e2', offset: 2 } }, 'the reset is its position now')
})

/** A store whose history the test can lose, as Redis without persistence loses it in a restart. */
class LosableStore implements HistoryStore {
  current = new MemoryStore()
  async append (message: NewMessage): Promise<AppendResult> { return await this.current.append(message) }
  async recent (room: string, limit: number): Promise<HistoryPage> { return await this.current.recent(room, limit) }
  async since (room: string, offset: number): Promise<HistoryPage | null> { return await this.current.since(room, offset) }
  async entry (room: string, offset: number): Promise<ChatMessage | null> { return await this.current.entry(room, offset) }
  async epoch (room: string): Promise<string> { return await this.current.epoch(room) }
}

/** The in-process adapter, with the node it was started with: what a broker tells of a reset, the test tells here. */
class ResettableAdapter extends LocalAdapter {
  node: AdapterNode | null = null
  override async start (context: AdapterContext): Promise<void> {
    this.node = context.node
    await super.start(context)
  }
}

/** A store that fails the next `failures` reads of a room's latest history, as a store or Redis that is away does. */
class FlakyStore extends LosableStore {
  failures = 0
  reads = 0
  override async recent (room: string, limit: number): Promise<HistoryPage> {
    this.reads++
    if (this.failures > 0) {
      this.failures--
      throw new Error('store away')
    }
    return await super.recent(room, limit)
  }
}

t.test('against a server: a join answered unavailable is asked again after a backoff, on the same socket, until it is in', async (t) => {
  const store = new FlakyStore()
  const { app, url } = await listen(t, { store, defaultRoom: null })
  await app.chat.broadcast('ops', 'kept')
  const conn = connect(`${url}/chat`, { WebSocket, backoff: { initialMs: 20, maxMs: 40 } })
  t.teardown(() => conn.close())
  await waitFor(conn, 'status', (status) => status === 'open')
  store.failures = 3
  const refused: string[] = []
  conn.on('error', (frame) => refused.push(`${frame.code} ${frame.room ?? ''}`))
  const welcomes: unknown[] = []
  conn.on('welcome', (frame) => welcomes.push(frame))
  const joined = waitFor(conn, 'joined')
  conn.join('ops')
  const frame = await joined
  t.strictSame(refused, ['unavailable ops', 'unavailable ops', 'unavailable ops'], 'told three times')
  t.match(frame, { room: 'ops', history: [{ text: 'kept' }] })
  t.strictSame(conn.rooms, ['ops'])
  t.strictSame(welcomes, [], 'on the same socket: no reconnect')
  t.equal(app.chat.size, 1)
  const resets: unknown[] = []
  conn.on('reset', (reset) => resets.push(reset))
  await app.chat.broadcast('ops', 'after')
  await waitFor(conn, 'message', (message) => message.text === 'after')
  t.strictSame(resets, [], 'the answered join is not mistaken for a reset later')
})

t.test('against a server: a room reset shows the messages after it, though their offsets start over', async (t) => {
  const store = new LosableStore()
  const adapter = new ResettableAdapter(store, false)
  const { app, url } = await listen(t, { adapter })
  const conn = connect(`${url}/chat?room=r`, fast)
  t.teardown(() => conn.close())
  const texts = shown(conn)
  const resets: JoinedFrame[] = []
  conn.on('reset', (frame) => resets.push(frame))
  const first = await waitFor(conn, 'joined')
  const before = waitFor(conn, 'message', (m) => m.text === 'a3')
  for (const text of ['a1', 'a2', 'a3']) await app.chat.broadcast('r', text)
  await before

  store.current = new MemoryStore()
  const reset = waitFor(conn, 'reset')
  adapter.node?.reset('r')
  const frame = await reset
  t.not(frame.epoch, first.epoch)
  t.strictSame([frame.offset, frame.recovered, frame.history], [0, false, []])
  const after = waitFor(conn, 'message', (m) => m.text === 'b3')
  for (const text of ['b1', 'b2', 'b3']) await app.chat.broadcast('r', text)
  const last = await after
  t.equal(last.offset, 3)
  t.strictSame(texts, ['a1', 'a2', 'a3', 'b1', 'b2', 'b3'], 'every message published after the reset is shown')

  const rejoined = waitFor(conn, 'joined')
  conn.join('r')
  t.strictSame([(await rejoined).recovered, resets.length], [true, 1], 'a join it asked for is no reset')
})

/** What the server sees of each socket: its query, the frames it got from the client, and the code it closed with. */
interface Seen { query: URLSearchParams, ws: WebSocket, frames: ClientFrame[], closed: Promise<number> }

function watch (app: FastifyInstance): Seen[] {
  const seen: Seen[] = []
  app.websocketServer.on('connection', (ws: WebSocket, request: IncomingMessage) => {
    const frames: ClientFrame[] = []
    ws.on('message', (data) => frames.push(JSON.parse(String(data)) as ClientFrame))
    const closed = new Promise<number>((resolve) => ws.once('close', resolve))
    seen.push({ query: new URL(request.url ?? '/', 'http://chat.test').searchParams, ws, frames, closed })
  })
  return seen
}

/** Users named by `?user=`, so ids stay the same across reconnects. */
const byUser = (request: FastifyRequest): { id: string, name: string } => {
  const { user } = request.query as { user: string }
  return { id: user, name: user }
}

t.test('disconnected by the app (4000): status closed, a closed event with the code and reason, and no reconnect', async (t) => {
  const { app, url } = await listen(t)
  const seen = watch(app)
  // A reconnect, if there were one, would start a millisecond after the close.
  const conn = connect(`${url}/chat?name=alice`, { WebSocket, backoff: { initialMs: 1, maxMs: 1 } })
  t.teardown(() => conn.close())
  const statuses: string[] = []
  conn.on('status', (status) => statuses.push(status))
  const welcome = waitFor(conn, 'welcome')
  const joined = waitFor(conn, 'joined')
  t.equal(conn.clientId, null, 'none before welcome')
  const { clientId } = await welcome
  await joined
  t.equal(conn.clientId, clientId)

  const closed = waitFor(conn, 'closed')
  t.equal(await app.chat.disconnect({ clientId }, { reason: 'spam' }), 1)
  t.strictSame(await closed, { code: 4000, reason: 'spam' })
  t.equal(conn.status, 'closed')
  t.same(conn.rooms, [])

  // The marker connects, upgrades and is answered after any reconnect of alice would have begun.
  const marker = await join(url, '?name=marker')
  t.teardown(() => marker.close())
  t.equal(seen.length, 2, 'the server saw no connection but alice\'s first and the marker')
  t.same(statuses, ['open', 'closed'])
  t.throws(() => conn.send('late'), { message: /closed/ })
})

t.test('a session that expires (4001) ends the connection when there are no params to renew it', async (t) => {
  const { url } = await listen(t, { identify: async () => ({ expiresAt: Date.now() + 300 }) })
  const conn = connect(`${url}/chat`, fast)
  t.teardown(() => conn.close())
  const welcome = waitFor(conn, 'welcome')
  const closed = waitFor(conn, 'closed')
  const { expiresAt } = await welcome
  t.type(expiresAt, 'number')
  t.equal(conn.expiresAt, expiresAt)
  t.strictSame(await closed, { code: 4001, reason: 'session expired' })
  t.equal(conn.status, 'closed')
})

t.test('a session that expires (4001) reconnects with fresh params and resumes its rooms', async (t) => {
  const tokens: string[] = []
  const { app, url } = await listen(t, {
    identify: async (request) => {
      const { token } = request.query as { token: string }
      tokens.push(token)
      if (token === 't1') return { id: 'alice', name: 'alice', expiresAt: Date.now() + 300 }
      if (token === 't2') return { id: 'alice', name: 'alice' }
      throw new Error('unknown token')
    }
  })
  const seen = watch(app)
  let issued = 0
  const conn = connect(`${url}/chat?room=lobby&token=stale`, { ...fast, rooms: ['news'], params: async () => ({ token: `t${++issued}` }) })
  t.teardown(() => conn.close())
  const over: unknown[] = []
  conn.on('closed', (event) => over.push(event))
  const welcome = waitFor(conn, 'welcome')
  const news = waitFor(conn, 'joined', (f) => f.room === 'news')
  const first = await welcome
  await news
  t.type(conn.expiresAt, 'number')
  await app.chat.broadcast('news', 'before')

  const dropped = waitFor(conn, 'status', (s) => s === 'reconnecting')
  const rejoined: JoinedFrame[] = []
  const back = new Promise<void>((resolve) => conn.on('joined', (frame) => {
    rejoined.push(frame)
    if (rejoined.length === 2) resolve()
  }))
  await dropped
  t.equal(await seen[0]?.closed, 4001, 'the server closed the first socket as expired')
  await within(back, 3000, 'both rooms joined again')
  t.strictSame(tokens, ['t1', 't2'], 'each connection asked params for its token')
  t.equal(seen[1]?.query.get('token'), 't2', 'the params are set over the URL\'s')
  t.same(rejoined.map((f) => [f.room, f.recovered]).sort(), [['lobby', true], ['news', true]])
  t.same(conn.rooms.sort(), ['lobby', 'news'])
  t.not(conn.clientId, first.clientId, 'a new socket, a new clientId')
  t.equal(conn.expiresAt, null, 'the new session does not expire')
  t.same(over, [], 'not over')
})

t.test('refresh: refreshed extends the session; a refused refresh reconnects through params', async (t) => {
  const later = Date.now() + 120_000
  const tokens: string[] = []
  const { app, url } = await listen(t, {
    identify: async (request) => {
      tokens.push((request.query as { token: string }).token)
      return { id: 'alice', name: 'alice', expiresAt: Date.now() + 60_000 }
    },
    refresh: async (token) => token === 'fresh' ? { expiresAt: later } : false
  })
  const seen = watch(app)
  let issued = 0
  const conn = connect(`${url}/chat`, { ...fast, params: () => ({ token: `t${++issued}` }) })
  t.teardown(() => conn.close())
  await waitFor(conn, 'joined')

  const refreshed = waitFor(conn, 'refreshed')
  conn.refresh('fresh')
  t.strictSame(await refreshed, { type: 'refreshed', expiresAt: later })
  t.equal(conn.expiresAt, later)
  t.same(seen[0]?.frames.at(-1), { type: 'refresh', token: 'fresh' })

  const dropped = waitFor(conn, 'status', (s) => s === 'reconnecting')
  const back = waitFor(conn, 'joined', (f) => f.room === 'lobby')
  conn.refresh('stale')
  await dropped
  t.equal(await seen[0]?.closed, 4001, 'refused: the server closed with 4001')
  await back
  t.equal(conn.status, 'open')
  t.strictSame(tokens, ['t1', 't2'], 'the reconnect got a fresh token from params')

  t.throws(() => conn.refresh(''), TypeError)
  t.throws(() => conn.refresh('x'.repeat(8193)), TypeError)
})

t.test('openDirect: both users get joined with `with`, messages flow, and a drop resumes the direct room with since', async (t) => {
  // Alice's reconnect waits at this gate, so what Bob says meanwhile surely happens while she is away.
  let gate: Promise<void> | null = null
  const { app, url } = await listen(t, {
    identify: async (request) => {
      const user = byUser(request)
      if (user.id === 'alice') await gate
      return user
    }
  })
  const seen = watch(app)
  const alice = connect(`${url}/chat?user=alice`, fast)
  const bob = connect(`${url}/chat?user=bob`, fast)
  t.teardown(() => alice.close())
  t.teardown(() => bob.close())
  const resets: string[] = []
  bob.on('reset', (frame) => resets.push(frame.room))
  const ready = [waitFor(alice, 'joined'), waitFor(bob, 'joined')]
  await Promise.all(ready)

  const aliceDirect = waitFor(alice, 'joined', (f) => f.with !== undefined)
  const bobDirect = waitFor(bob, 'joined', (f) => f.with !== undefined)
  const cid = alice.openDirect('bob')
  const opened = await aliceDirect
  t.match(opened, { room: /^dm-/, with: { id: 'bob' } })
  const room = opened.room
  t.same(seen[0]?.frames.at(-1), { type: 'join', with: 'bob', cid }, 'alice asked by user id')
  t.strictSame([...alice.directs], [[room, opened.with]])
  t.same(alice.rooms.sort(), ['lobby', room].sort())

  alice.send('hi', room)
  const added = await bobDirect
  t.match(added, { room, with: { id: 'alice', name: 'alice' } }, 'the server added bob when alice wrote')
  t.same(added.history.map((m) => m.text), ['hi'], 'the message that brought him in, stored before he joined')
  t.same([...bob.directs].map(([r, user]) => [r, user.id]), [[room, 'alice']], 'bob remembers it though he did not ask')
  t.same(resets, [], 'a joined bob did not ask for, of a room he was not in, is no reset')

  const reply = waitFor(alice, 'message', (m) => m.text === 'hello alice')
  bob.send('hello alice', room)
  await reply

  let release = (): void => {}
  gate = new Promise((resolve) => { release = resolve })
  const dropped = waitFor(alice, 'status', (s) => s === 'reconnecting')
  seen[0]?.ws.terminate()
  await dropped
  const away = waitFor(bob, 'message', (m) => m.text === 'while away')
  bob.send('while away', room)
  await away
  const rejoined = waitFor(alice, 'joined', (f) => f.room === room)
  const lobby = waitFor(alice, 'joined', (f) => f.room === 'lobby')
  release()
  const frame = await rejoined
  await lobby
  t.match(frame, { recovered: true, with: { id: 'bob' } })
  t.same(frame.history.map((m) => m.text), ['while away'], 'what bob said while she was away, once')
  const resumed = seen[2]?.frames.find((f) => f.type === 'join')
  t.same(resumed, { type: 'join', with: 'bob', since: { epoch: opened.epoch, offset: 2 } }, 'rejoined by user id, from where it stopped')
  t.equal(seen[2]?.query.get('room'), 'lobby', 'the direct room does not ride in the URL')

  const after = waitFor(bob, 'message', (m) => m.text === 'back')
  alice.send('back', room)
  t.equal((await after).from.id, 'alice')
  t.same((await app.chat.history(room)).map((m) => m.text), ['hi', 'hello alice', 'while away', 'back'])
})

t.test('a refused join is not asked again after a reconnect; a refused publish keeps the room', async (t) => {
  const asked = { secret: 0, carol: 0 }
  const { app, url } = await listen(t, {
    authorize: ({ action, room, to }) => {
      if (action === 'join' && room === 'secret') return asked.secret++ < 0
      if (action === 'direct' && to === 'carol') return asked.carol++ < 0
      return !(action === 'publish' && room === 'readonly')
    }
  })
  const conn = connect(`${url}/chat?room=lobby`, { ...fast, rooms: ['secret', 'readonly'] })
  t.teardown(() => conn.close())
  const refused = waitFor(conn, 'error', (e) => e.code === 'forbidden')
  const readonly = waitFor(conn, 'joined', (f) => f.room === 'readonly')
  t.match(await refused, { room: 'secret' })
  await readonly
  t.same(conn.rooms.sort(), ['lobby', 'readonly'])

  const directRefused = waitFor(conn, 'error', (e) => e.code === 'forbidden')
  const cid = conn.openDirect('carol')
  t.match(await directRefused, { room: /^dm-/, cid })
  t.same(conn.directs, new Map())

  const publishRefused = waitFor(conn, 'error', (e) => e.code === 'forbidden')
  const sent = conn.send('hi', 'readonly')
  t.match(await publishRefused, { room: 'readonly', cid: sent })
  t.ok(conn.rooms.includes('readonly'), 'refused to publish, still in the room')

  const rejoined = new Set<string>()
  const back = new Promise<void>((resolve) => conn.on('joined', (frame) => {
    rejoined.add(frame.room)
    if (rejoined.size === 2) resolve()
  }))
  for (const socket of app.websocketServer.clients) socket.terminate()
  await within(back, 3000, 'lobby and readonly joined again')
  // Answered after any join sent on reconnecting.
  const marker = waitFor(conn, 'joined', (f) => f.room === 'marker')
  conn.join('marker')
  await marker
  t.same(conn.rooms.sort(), ['lobby', 'marker', 'readonly'])
  t.same(asked, { secret: 1, carol: 1 }, 'neither refusal was asked again')

  const again = waitFor(conn, 'error', (e) => e.code === 'forbidden')
  conn.join('secret')
  t.match(await again, { room: 'secret' })
  t.equal(asked.secret, 2, 'join() asks again')
})

t.test('removed by the app: left with reason removed, and not rejoined; added by the app: a plain joined', async (t) => {
  const { app, url } = await listen(t, { identify: async (request) => byUser(request) })
  const conn = connect(`${url}/chat?user=alice`, { ...fast, rooms: ['news'] })
  t.teardown(() => conn.close())
  const resets: string[] = []
  conn.on('reset', (frame) => resets.push(frame.room))
  await waitFor(conn, 'joined', (f) => f.room === 'news')

  const left = waitFor(conn, 'left')
  t.equal(await app.chat.removeFromRoom('news', 'alice', { reason: 'off topic' }), 1)
  t.strictSame(await left, { type: 'left', room: 'news', reason: 'removed', message: 'off topic' })
  t.same(conn.rooms, ['lobby'])

  const added = waitFor(conn, 'joined', (f) => f.room === 'extra')
  t.equal(await app.chat.addToRoom('extra', 'alice'), 1)
  t.equal((await added).with, undefined)
  t.same(conn.rooms.sort(), ['extra', 'lobby'])

  const rejoined = new Set<string>()
  const back = new Promise<void>((resolve) => conn.on('joined', (frame) => {
    rejoined.add(frame.room)
    if (rejoined.size === 2) resolve()
  }))
  for (const socket of app.websocketServer.clients) socket.terminate()
  await within(back, 3000, 'lobby and extra joined again')
  const marker = waitFor(conn, 'joined', (f) => f.room === 'marker')
  conn.join('marker')
  await marker
  t.same(conn.rooms.sort(), ['extra', 'lobby', 'marker'], 'news stays left')
  t.same(resets, [])
})

t.test('params: asked before every connection and set under the client\'s own; a failing call is a failed attempt', async (t) => {
  const { FakeSocket, sockets, next } = fakeSockets()
  const answers: Array<() => Record<string, string> | Promise<Record<string, string>>> = [
    () => { throw new Error('no token yet') },
    async () => { throw new Error('offline') },
    async () => ({ token: 'a', room: 'elsewhere', since: 'x:1' }),
    () => ({ token: 'b' })
  ]
  let calls = 0
  const opened = next()
  const conn = connect('ws://chat.test/chat?room=lobby&token=stale', {
    WebSocket: FakeSocket,
    backoff: { initialMs: 1, maxMs: 1 },
    params: () => (answers[calls++] as () => Record<string, string>)()
  })
  t.teardown(() => conn.close())
  t.equal(conn.status, 'reconnecting', 'the first call threw: a failed attempt')
  const socket = await opened
  t.equal(calls, 3, 'a rejection too, then the third call opened')
  t.same([...new URL(socket.url).searchParams].sort(), [['room', 'lobby'], ['token', 'a']])

  const reopened = next()
  socket.drop()
  const socket2 = await reopened
  t.equal(calls, 4)
  t.equal(new URL(socket2.url).searchParams.get('token'), 'b')
  t.equal(sockets.length, 2)
})

t.test('params that never settle: after 10 s the attempt has failed, the next call opens, and the late answer is dropped', async (t) => {
  const { FakeSocket, sockets } = fakeSockets()
  let late = (_params: Record<string, string>): void => {}
  const answers = [
    async () => await new Promise<Record<string, string>>((resolve) => { late = resolve }),
    () => ({ token: 'fresh' })
  ]
  let calls = 0
  await withFakeClock(async (clock) => {
    const conn = connect('ws://chat.test/chat', {
      WebSocket: FakeSocket,
      backoff: { initialMs: 1, maxMs: 1 },
      params: () => (answers[calls++] as () => Record<string, string>)()
    })
    clock.tick(9_999)
    t.equal(sockets.length, 0, 'still waiting just before the bound')
    t.equal(conn.status, 'connecting')
    clock.tick(1)
    t.equal(conn.status, 'reconnecting', 'the attempt failed')
    clock.tick(1)
    t.equal(calls, 2)
    t.equal(sockets.length, 1)
    t.equal(new URL((sockets[0] as { url: string }).url).searchParams.get('token'), 'fresh')
    late({ token: 'stale' })
    await Promise.resolve()
    await Promise.resolve()
    t.equal(sockets.length, 1, 'the late answer opened nothing')
    conn.close()
  })
})

t.test('join retries back off up to maxMs, and stop when the room is left, the socket drops or the client closes', async (t) => {
  const { FakeSocket, sockets } = fakeSockets()
  await withFakeClock(async (clock) => {
    const conn = connect('ws://chat.test/chat', { WebSocket: FakeSocket, backoff: { initialMs: 100, maxMs: 400 } })
    const first = sockets[0] as InstanceType<typeof FakeSocket>
    first.receive({ type: 'welcome', id: 'u', clientId: 'c1', name: 'U' })
    const joins = (socket: InstanceType<typeof FakeSocket>, room: string): number =>
      socket.sent.filter((frame) => frame.type === 'join' && frame.room === room).length
    const unavailable = (socket: InstanceType<typeof FakeSocket>, room: string): void =>
      socket.receive({ type: 'error', code: 'unavailable', message: 'away', room })

    conn.join('a')
    for (const [wait, total] of [[100, 2], [200, 3], [400, 4], [400, 5]] as const) {
      unavailable(first, 'a')
      clock.tick(wait)
      t.equal(joins(first, 'a'), total, `asked again within ${wait} ms`)
    }
    unavailable(first, 'a')
    conn.leave('a')
    clock.tick(1000)
    t.equal(joins(first, 'a'), 5, 'not after it was left')

    conn.join('b')
    unavailable(first, 'b')
    first.drop()
    clock.tick(10_000)
    t.equal(joins(first, 'b'), 1, 'not on a socket that dropped')
    const second = sockets[1] as InstanceType<typeof FakeSocket>
    second.receive({ type: 'welcome', id: 'u', clientId: 'c2', name: 'U' })
    t.equal(joins(second, 'b'), 1, 'the new socket asks once, as for every room')
    unavailable(second, 'b')
    conn.close()
    clock.tick(1000)
    t.equal(joins(second, 'b'), 1, 'nothing after close')
  })
})

t.test('close() while params are pending: closed, and no socket opens after', async (t) => {
  const { FakeSocket, sockets } = fakeSockets()
  let answer = (_params: Record<string, string>): void => {}
  const pending = new Promise<Record<string, string>>((resolve) => { answer = resolve })
  const conn = connect('ws://chat.test/chat', { WebSocket: FakeSocket, params: () => pending })
  t.equal(conn.status, 'connecting')
  const closed = waitFor(conn, 'closed')
  conn.close()
  t.strictSame(await closed, { code: 1000, reason: 'client closed' })
  answer({ token: 'late' })
  await pending
  // The client's continuation was queued on `pending` first, so it has run.
  t.equal(sockets.length, 0)
})

t.test('openDirect before open is sent after welcome; refusals drop it, other errors keep it for the next connection', async (t) => {
  const { FakeSocket, sockets, next } = fakeSockets()
  const conn = connect('ws://chat.test/chat', { WebSocket: FakeSocket, backoff: { initialMs: 1, maxMs: 1 } })
  t.teardown(() => conn.close())
  t.throws(() => conn.openDirect(''), TypeError)
  t.throws(() => conn.openDirect('x'.repeat(129)), TypeError)
  const toBob = conn.openDirect('bob')
  const toCarol = conn.openDirect('carol')
  const toMe = conn.openDirect('me')
  const [socket] = sockets as [InstanceType<typeof FakeSocket>]
  t.same(socket.sent, [])
  socket.receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'me' })
  t.same(socket.sent, [
    { type: 'join', with: 'bob', cid: toBob },
    { type: 'join', with: 'carol', cid: toCarol },
    { type: 'join', with: 'me', cid: toMe }
  ])
  socket.receive({ type: 'error', code: 'unavailable', message: 'later', room: 'dm-bob', cid: toBob })
  socket.receive({ type: 'error', code: 'forbidden', message: 'no', room: 'dm-carol', cid: toCarol })
  socket.receive({ type: 'error', code: 'invalid_message', message: 'yourself', cid: toMe })

  const reopened = next()
  socket.drop()
  const socket2 = await reopened
  socket2.receive({ type: 'welcome', clientId: 'c2', id: 'me', name: 'me' })
  t.same(socket2.sent, [{ type: 'join', with: 'bob', cid: toBob }], 'only the one that may still succeed')
  const bob = { id: 'bob', name: 'Bob' }
  socket2.receive({ type: 'joined', room: 'dm-bob', epoch: 'e1', offset: 3, recovered: false, history: [], users: [bob], count: 1, with: bob })
  t.same([...conn.directs], [['dm-bob', bob]])

  const reopened3 = next()
  socket2.drop({ code: 1001, reason: 'going away' })
  const socket3 = await reopened3
  t.equal(new URL(socket3.url).searchParams.get('room'), null, 'a direct room never rides in the URL')
  socket3.receive({ type: 'welcome', clientId: 'c3', id: 'me', name: 'me' })
  t.same(socket3.sent, [{ type: 'join', with: 'bob', since: { epoch: 'e1', offset: 3 } }], 'answered: rejoined by the room it knows')

  conn.leave('dm-bob')
  t.same(socket3.sent.at(-1), { type: 'leave', room: 'dm-bob' })
  t.same(conn.directs, new Map(), 'left: forgotten')
})

t.test('presence: count and users follow joined, presence events, occupancy and pages; count events only on a change', async (t) => {
  const { FakeSocket, sockets } = fakeSockets()
  const conn = connect('ws://chat.test/chat?room=big', { WebSocket: FakeSocket })
  t.teardown(() => conn.close())
  const counts: number[] = []
  conn.on('count', ({ room, count }) => counts.push(room === 'big' ? count : -1))
  const [socket] = sockets as [InstanceType<typeof FakeSocket>]
  const [me, ann, bob, cy] = ['me', 'ann', 'bob', 'cy'].map((id) => ({ id, name: id })) as [User, User, User, User]
  socket.receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'me' })
  t.equal(conn.presence('big'), undefined, 'nothing before joined')

  socket.receive({ type: 'joined', room: 'big', epoch: 'e1', offset: 0, recovered: false, history: [], users: [me, ann], count: 4 })
  t.same(conn.presence('big'), { count: 4, users: [me, ann], more: true }, 'two of four listed: more to load')
  socket.receive({ type: 'presence', room: 'big', event: 'join', user: bob, count: 5 })
  socket.receive({ type: 'presence', room: 'big', event: 'rename', user: { id: 'ann', name: 'Ann' }, previous: 'ann', count: 5 })
  socket.receive({ type: 'presence', room: 'big', event: 'leave', user: me, count: 4 })
  socket.receive({ type: 'presence', room: 'elsewhere', event: 'join', user: cy, count: 9 })
  t.same(conn.presence('big')?.users, [{ id: 'ann', name: 'Ann' }, bob])
  socket.receive({ type: 'occupancy', room: 'big', count: 300 })
  socket.receive({ type: 'occupancy', room: 'big', count: 300 })
  t.equal(conn.presence('big')?.count, 300)
  socket.receive({ type: 'members', room: 'big', users: [cy], count: 299 })
  t.same(conn.presence('big'), { count: 299, users: [{ id: 'ann', name: 'Ann' }, bob, cy], more: true }, 'a page nobody asked for is kept too')
  socket.receive({ type: 'members', room: 'elsewhere', users: [cy], count: 1 })
  t.equal(conn.presence('elsewhere'), undefined, 'nothing kept of a room it is not in')
  t.same(counts, [4, 5, 4, 300, 299], 'one event per change, none for an unchanged count or another room')

  // Our own rename reaches us as `renamed`, not as presence.
  socket.receive({ type: 'presence', room: 'big', event: 'join', user: me, count: 300 })
  socket.receive({ type: 'renamed', name: 'Me', previous: 'me' })
  t.same(conn.presence('big')?.users.at(-1), { id: 'me', name: 'Me' })

  // A rejoin starts the list over from its joined.
  socket.receive({ type: 'joined', room: 'big', epoch: 'e1', offset: 0, recovered: true, history: [], users: [bob], count: 1 })
  t.same(conn.presence('big'), { count: 1, users: [bob], more: false }, 'everyone listed: nothing more to load')
  socket.receive({ type: 'left', room: 'big' })
  t.equal(conn.presence('big'), undefined, 'forgotten once left')
  t.same(counts, [4, 5, 4, 300, 299, 300, 1])
})

t.test('members(): each page is matched by cid and merged; errors, drops, a closed client and 10 s of silence reject it', async (t) => {
  const { FakeSocket, sockets, next } = fakeSockets()
  const conn = connect('ws://chat.test/chat?room=big', { WebSocket: FakeSocket, backoff: { initialMs: 1, maxMs: 1 } })
  t.teardown(() => conn.close())
  await t.rejects(conn.members('big'), { code: 'not_open' })
  const [socket] = sockets as [InstanceType<typeof FakeSocket>]
  socket.receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'me' })
  socket.receive({ type: 'joined', room: 'big', epoch: 'e1', offset: 0, recovered: false, history: [], users: [], count: 3 })
  await t.rejects(conn.members('bad room'), TypeError)
  await t.rejects(conn.members('big', { limit: 0 }), TypeError)
  await t.rejects(conn.members('big', { limit: MAX_MEMBERS_PAGE + 1 }), TypeError)
  await t.rejects(conn.members('big', { limit: 1.5 }), TypeError)
  await t.rejects(conn.members('big', { after: 'x'.repeat(MAX_CURSOR_LENGTH + 1) }), TypeError)
  t.same(socket.sent, [], 'nothing sent for bad arguments')

  const pages: MembersFrame[] = []
  conn.on('members', (page) => pages.push(page))
  const errors: unknown[] = []
  conn.on('error', (frame) => errors.push(frame))
  const first = conn.members('big', { limit: MAX_MEMBERS_PAGE })
  const second = conn.members('big', { after: 'x'.repeat(MAX_CURSOR_LENGTH), limit: 2 })
  const [ask1, ask2] = socket.sent as [MembersRequest, MembersRequest]
  t.match(ask1, { type: 'members', room: 'big', limit: MAX_MEMBERS_PAGE, cid: /^[0-9a-f]{24}$/ })
  t.notOk('after' in ask1, 'no cursor for the first page')
  t.match(ask2, { type: 'members', room: 'big', after: 'x'.repeat(MAX_CURSOR_LENGTH), limit: 2 })
  const a = { id: 'a', name: 'A' }
  const b = { id: 'b', name: 'B' }
  // Answered out of order: each promise gets its own page.
  socket.receive({ type: 'members', room: 'big', users: [b], count: 3, cid: ask2.cid as string })
  socket.receive({ type: 'members', room: 'big', users: [a], count: 3, next: '1', cid: ask1.cid as string })
  t.same((await first).users, [a])
  t.same((await second).users, [b])
  t.same(pages.map((page) => page.users), [[b], [a]], 'a members event per page')
  t.same(conn.presence('big')?.users, [b, a])

  const refused = conn.members('big')
  const { cid } = socket.sent.at(-1) as MembersRequest
  socket.receive({ type: 'error', code: 'unavailable', message: 'redis away', room: 'big', cid: cid as string })
  await t.rejects(refused, { code: 'unavailable', message: 'redis away' })
  t.same(errors, [], 'the promise tells it, not an error event')

  const dropped = conn.members('big')
  const reopened = next()
  socket.drop()
  await t.rejects(dropped, { code: 'closed' })
  const socket2 = await reopened
  socket2.receive({ type: 'welcome', clientId: 'c2', id: 'me', name: 'me' })
  const closed = conn.members('big')
  conn.close()
  await t.rejects(closed, { code: 'closed' })

  await withFakeClock(async (clock) => {
    const { FakeSocket, sockets } = fakeSockets()
    const quiet = connect('ws://chat.test/chat', { WebSocket: FakeSocket })
    ;(sockets[0] as InstanceType<typeof FakeSocket>).receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'me' })
    const silent = quiet.members('lobby')
    let outcome: unknown = 'pending'
    silent.then(() => { outcome = 'resolved' }, (err: MembersError) => { outcome = err.code })
    clock.tick(9_999)
    await Promise.resolve()
    t.equal(outcome, 'pending', 'still waiting just before the bound')
    clock.tick(1)
    await silent.catch(() => {})
    t.equal(outcome, 'timeout')
    const late = quiet.members('lobby')
    quiet.close()
    await t.rejects(late, { code: 'closed' })
    clock.tick(20_000)
  })
})

t.test('loadMembers() pages on from the last page, says when there is more, and starts over after the last', async (t) => {
  const { FakeSocket, sockets } = fakeSockets()
  const conn = connect('ws://chat.test/chat?room=big', { WebSocket: FakeSocket })
  t.teardown(() => conn.close())
  const [socket] = sockets as [InstanceType<typeof FakeSocket>]
  await t.rejects(conn.loadMembers('big'), { code: 'not_in_room' })
  socket.receive({ type: 'welcome', clientId: 'c1', id: 'me', name: 'me' })
  const u = (id: string): User => ({ id, name: id })
  socket.receive({ type: 'joined', room: 'big', epoch: 'e1', offset: 0, recovered: false, history: [], users: [u('1')], count: 3 })
  const answer = (page: Omit<MembersFrame, 'type' | 'room' | 'count' | 'cid'>): MembersRequest => {
    const ask = socket.sent.at(-1) as MembersRequest
    socket.receive({ type: 'members', room: 'big', count: 3, cid: ask.cid as string, ...page })
    return ask
  }

  await t.rejects(conn.loadMembers('big', 0), TypeError)
  let more = conn.loadMembers('big', 1)
  const first = answer({ users: [u('1'), u('2')], next: 'c2' })
  t.notOk('after' in first, 'the first page from the start')
  t.equal(first.limit, 2, 'past the user the joined listed, and one more')
  t.equal(await more, true)
  more = conn.loadMembers('big', 1)
  t.match(answer({ users: [u('3')] }), { after: 'c2', limit: 1 }, 'the next from where the last stopped')
  t.equal(await more, false, 'that was the last page')
  t.same(conn.presence('big'), { count: 3, users: [u('1'), u('2'), u('3')], more: false })
  more = conn.loadMembers('big')
  const again = answer({ users: [u('1')], next: 'c1' })
  t.notOk('after' in again, 'after the last page, from the start again')
  t.equal(again.limit, 6, 'past the three it knows, and as many more')
  t.equal(await more, true)
  more = conn.loadMembers('big')
  t.notOk('limit' in answer({ users: [u('2')], next: 'c2' }), 'on from a cursor: the server\'s page size unless given')
  t.equal(await more, true)

  // A rejoin while a page is on its way: the new list keeps paging from the start.
  more = conn.loadMembers('big')
  socket.receive({ type: 'joined', room: 'big', epoch: 'e1', offset: 0, recovered: true, history: [], users: [u('1')], count: 3 })
  answer({ users: [u('2'), u('3')], next: 'c2' })
  t.equal(await more, false, 'the new list\'s own answer: it has everyone')
  t.same(conn.presence('big')?.users, [u('1'), u('2'), u('3')])
  more = conn.loadMembers('big')
  t.notOk('after' in answer({ users: [] }), 'the stale cursor was not kept')
  await more

  // Nobody listed (presenceListMax 0): the server's page size from the start.
  socket.receive({ type: 'joined', room: 'big', epoch: 'e1', offset: 0, recovered: true, history: [], users: [], count: 3 })
  more = conn.loadMembers('big')
  t.notOk('limit' in answer({ users: [u('1')], next: 'c1' }))
  t.equal(await more, true)

  // A joined that lists a first page names where the rest starts.
  socket.receive({ type: 'joined', room: 'big', epoch: 'e1', offset: 0, recovered: true, history: [], users: [u('1')], count: 3, next: 'c1' })
  t.equal(conn.presence('big')?.more, true)
  more = conn.loadMembers('big')
  const rest = answer({ users: [u('2'), u('3')] })
  t.equal(rest.after, 'c1', 'on from the joined\'s next, not from the start')
  t.notOk('limit' in rest, 'with the server\'s page size')
  t.equal(await more, false)
  t.same(conn.presence('big')?.users, [u('1'), u('2'), u('3')])
})

t.test('the first reconnect after a drop waits a random 0 to initialMs, so clients dropped together come back spread out', async (t) => {
  const { FakeSocket, sockets } = fakeSockets()
  const clients = 200
  const initialMs = 1000
  await withFakeClock(async (clock) => {
    const conns = Array.from({ length: clients }, (_, i) =>
      connect(`ws://chat.test/chat?name=c${i}`, { WebSocket: FakeSocket, backoff: { initialMs, maxMs: 60_000 } }))
    const first = [...sockets] as Array<InstanceType<typeof FakeSocket>>
    t.equal(first.length, clients)
    for (const socket of first) socket.receive({ type: 'welcome', clientId: 'c', id: 'u', name: 'u' })
    // A server restart: every socket drops in the same instant.
    for (const socket of first) socket.drop({ code: 1001, reason: 'going away' })

    const delays: number[] = []
    for (let ms = 1; ms <= initialMs && delays.length < clients; ms++) {
      const before = sockets.length
      clock.tick(1)
      for (let i = before; i < sockets.length; i++) delays.push(ms)
    }
    t.equal(delays.length, clients, 'every client came back within initialMs')
    // Uniform over 0..1000 ms: ten slots of 100 ms hold about 20 each. The
    // bounds below fail with a chance under 1e-9, unless the spread is not uniform.
    const slots = Array.from({ length: 10 }, (_, slot) => delays.filter((ms) => Math.ceil(ms / 100) - 1 === slot).length)
    t.ok(slots.every((n) => n >= 1 && n <= 60), `spread over the whole window: ${slots.join(' ')}`)
    const mean = delays.reduce((sum, ms) => sum + ms, 0) / clients
    t.ok(mean > 350 && mean < 650, `mean delay ${mean.toFixed(0)} ms, about initialMs / 2`)
    for (const conn of conns) conn.close()
  })
})

t.test('against a server: count follows joined, presence and occupancy, and loadMembers pages every user in once', async (t) => {
  const { url } = await listen(t, { presenceListMax: 2, presenceEventsMax: 4, occupancyIntervalMs: 20 })
  const others = await Promise.all(['u1', 'u2', 'u3'].map(async (name) => await join(url, `?name=${name}`)))
  t.teardown(() => { for (const other of others) other.close() })
  const conn = connect(`${url}/chat?name=me`, fast)
  t.teardown(() => conn.close())
  const counts: number[] = []
  conn.on('count', ({ count }) => counts.push(count))
  const joined = await waitFor(conn, 'joined')
  t.equal(joined.users.length, 2, 'joined lists presenceListMax users')
  t.match(conn.presence('lobby'), { count: 4, more: true })

  const pageSizes: number[] = []
  for (let pages = 0; conn.presence('lobby')?.more === true && pages < 10; pages++) {
    const page = waitFor(conn, 'members')
    await conn.loadMembers('lobby', 1)
    pageSizes.push((await page).users.length)
  }
  t.same(pageSizes, [1, 1], 'on from the joined\'s next, one user a page')
  t.same(conn.presence('lobby')?.users.map((u) => u.name).sort(), ['me', 'u1', 'u2', 'u3'])

  // A fifth user takes the room over presenceEventsMax: a count, no per-user event.
  const presences: string[] = []
  conn.on('presence', ({ event, user }) => presences.push(`${event} ${user.name}`))
  const five = waitFor(conn, 'count', ({ count }) => count === 5)
  const u4 = await join(url, '?name=u4')
  await five
  t.same(presences, [], 'no presence event above the limit')
  t.equal(conn.presence('lobby')?.users.length, 4, 'nobody was announced')

  // Back to the limit: the count first, then per-user events again.
  const back = waitFor(conn, 'presence', ({ event }) => event === 'leave')
  u4.close()
  t.match(await back, { user: { name: 'u4' }, count: 4 })
  const left = waitFor(conn, 'presence', ({ event }) => event === 'leave')
  others[0]?.close()
  t.match(await left, { user: { name: 'u1' }, count: 3 })
  t.match(conn.presence('lobby'), { count: 3, more: false })
  t.same(conn.presence('lobby')?.users.map((u) => u.name).sort(), ['me', 'u2', 'u3'])
  t.same(counts, [4, 5, 4, 3])

  const page = await conn.members('lobby', { limit: 2 })
  t.equal(page.users.length, 2)
  t.equal(page.count, 3)
  t.type(page.next, 'string')
  const rest = await conn.members('lobby', { after: page.next as string })
  t.same([...page.users, ...rest.users].map((u) => u.name).sort(), ['me', 'u2', 'u3'], 'two pages cover every user once')
  t.equal(rest.next, undefined, 'the last page has no next')
  await t.rejects(conn.members('elsewhere'), { code: 'not_in_room' })
})
