import t from 'tap'
import type { Test } from 'tap'
import type { Adapter, AuthorizeRequest, FastifyChatOptions } from '../index.js'
import { LocalAdapter } from '../lib/broker/local-adapter.js'
import { MAX_SIGNALS_IN_FLIGHT } from '../lib/chat/hub.js'
import { MemoryStore } from '../lib/stores/memory-store.js'
import { MAX_SIGNAL_DATA_BYTES } from '../lib/protocol/wire.js'
import type { ServerFrame } from '../lib/protocol/wire.js'
import { Client, listen, userSocket } from './helpers/chat.js'

/** A user's socket in `lobby`, past its welcome and joined. */
async function user (t: Test, url: string, id: string): Promise<Client> {
  const client = await userSocket(t, url, id)
  await client.expect('joined')
  return client
}

const identified: FastifyChatOptions = {
  identify: (request) => {
    const { user } = request.query as { user: string }
    return { id: user, name: user }
  }
}

/** A marker message from `from`: once it arrives, whatever was sent before it has arrived too. */
async function marker (from: Client, text: string, ...readers: Client[]): Promise<void> {
  from.send({ type: 'message', text })
  for (const reader of [from, ...readers]) {
    const frame = await reader.next(`the marker ${text}`)
    if (frame.type !== 'message' || frame.text !== text) throw new Error(`expected the marker ${text}, got ${JSON.stringify(frame)}`)
  }
}

/** What `reader` gets up to and including the message `text`. */
async function upTo (reader: Client, text: string): Promise<ServerFrame[]> {
  const got: ServerFrame[] = []
  for (;;) {
    const frame = await reader.next(`the marker ${text}`)
    got.push(frame)
    if (frame.type === 'message' && frame.text === text) return got
  }
}

t.test('a signal reaches the other members, the sender\'s other tabs too, and is never stored', async (t) => {
  const { app, url } = await listen(t, identified)
  const alice = await user(t, url, 'alice')
  const aliceTab = await user(t, url, 'alice')
  const bob = await user(t, url, 'bob')
  // Presence of bob's arrival, for those already in.
  t.match(await alice.expect('presence'), { event: 'join', user: { id: 'bob' } })
  t.match(await aliceTab.expect('presence'), { event: 'join', user: { id: 'bob' } })

  alice.send({ type: 'signal', room: 'lobby', name: 'typing', data: { draft: true } })
  const expected = { type: 'signal', room: 'lobby', name: 'typing', from: { id: 'alice', name: 'alice' }, data: { draft: true } }
  t.strictSame(await bob.expect('signal'), expected)
  t.strictSame(await aliceTab.expect('signal'), expected, 'the sender\'s other socket gets it')
  bob.send({ type: 'signal', room: 'lobby', name: 'typing' })
  const plain = { type: 'signal', room: 'lobby', name: 'typing', from: { id: 'bob', name: 'bob' } }
  t.strictSame(await alice.expect('signal'), plain, 'without data, no data')
  t.strictSame(await aliceTab.expect('signal'), plain)
  // The sender's own socket got nothing of its signal: the next frame is the marker.
  await marker(alice, 'after', bob, aliceTab)
  await marker(bob, 'after-bob', alice, aliceTab)

  const carol = await user(t, url, 'carol')
  t.equal(carol.frames.length, 0)
  const history = await app.chat.history('lobby')
  t.strictSame(history.map((m) => m.text), ['after', 'after-bob'], 'history holds the messages only')
  t.strictSame(history.map((m) => m.offset), [1, 2], 'signals take no offsets')
  carol.send({ type: 'join', room: 'lobby' })
  const rejoined = await carol.expect('joined')
  t.strictSame(rejoined.history.map((m) => m.text), ['after', 'after-bob'], 'a joiner\'s replay has no signal')
  t.equal(app.chat.stats().drops.signal_shed, 0)
})

t.test('bad signal frames get their codes', async (t) => {
  const { url } = await listen(t, { ...identified, signals: ['typing', 'recording'] })
  const alice = await user(t, url, 'alice')
  const cases: Array<[object, string]> = [
    [{ type: 'signal', room: 'lobby' }, 'invalid_message'],
    [{ type: 'signal', room: 'lobby', name: 5 }, 'invalid_message'],
    [{ type: 'signal', room: 'lobby', name: '' }, 'invalid_message'],
    [{ type: 'signal', room: 'lobby', name: 'has space' }, 'invalid_message'],
    [{ type: 'signal', room: 'lobby', name: 'x'.repeat(33) }, 'invalid_message'],
    [{ type: 'signal', name: 'typing' }, 'invalid_room'],
    [{ type: 'signal', room: 'no room!', name: 'typing' }, 'invalid_room'],
    [{ type: 'signal', room: 42, name: 'typing' }, 'invalid_room'],
    [{ type: 'signal', room: 'lobby', name: 'typing', data: 'x'.repeat(MAX_SIGNAL_DATA_BYTES) }, 'too_large'],
    [{ type: 'signal', room: 'lobby', name: 'dancing' }, 'unknown_signal'],
    [{ type: 'signal', room: 'elsewhere', name: 'typing' }, 'not_in_room']
  ]
  for (const [frame, code] of cases) {
    alice.send({ ...frame, cid: 'c1' })
    t.match(await alice.expect('error'), { code, cid: 'c1' }, `${JSON.stringify(frame).slice(0, 80)}: ${code}`)
  }
  const unknown = await (async () => {
    alice.send({ type: 'signal', room: 'lobby', name: 'dancing' })
    return await alice.expect('error')
  })()
  t.strictSame(unknown, { type: 'error', code: 'unknown_signal', message: 'unknown signal "dancing"', room: 'lobby' })
  // Data just under the cap, and another configured name, pass.
  alice.send({ type: 'signal', room: 'lobby', name: 'recording', data: 'x'.repeat(MAX_SIGNAL_DATA_BYTES - 2) })
  await marker(alice, 'fine')
})

t.test('signals over the limit are dropped and counted, with no error frame', async (t) => {
  const { app, url } = await listen(t, { ...identified, signalRate: { messages: 1, intervalMs: 60_000, burst: 3 } })
  const alice = await user(t, url, 'alice')
  const bob = await user(t, url, 'bob')
  t.match(await alice.expect('presence'), { event: 'join' })
  for (let i = 0; i < 6; i++) alice.send({ type: 'signal', room: 'lobby', name: 'typing', data: i })
  await marker(alice, 'marker')
  t.strictSame((await upTo(bob, 'marker')).map((f) => f.type === 'signal' ? f.data : f.type), [0, 1, 2, 'message'], 'three got through, the marker after them')
  t.equal(app.chat.stats().drops.signal_limited, 3)
  t.equal(app.chat.stats().drops.rate_limited, 0, 'the frame limit did not kick in')
})

t.test('signalRate false lets every signal through; signals [] accepts none', async (t) => {
  const open = await listen(t, { ...identified, signalRate: false, rateLimit: false })
  const alice = await user(t, open.url, 'alice')
  const bob = await user(t, open.url, 'bob')
  await alice.expect('presence')
  for (let i = 0; i < 30; i++) alice.send({ type: 'signal', room: 'lobby', name: 'typing' })
  await marker(alice, 'm')
  t.equal((await upTo(bob, 'm')).filter((f) => f.type === 'signal').length, 30)
  t.equal(open.app.chat.stats().drops.signal_limited, 0)

  const none = await listen(t, { ...identified, signals: [] })
  const carol = await user(t, none.url, 'carol')
  carol.send({ type: 'signal', room: 'lobby', name: 'typing' })
  t.match(await carol.expect('error'), { code: 'unknown_signal' })
})

t.test('authorize is asked with action signal; a refusal gets forbidden and reaches nobody', async (t) => {
  const asked: Array<Pick<AuthorizeRequest, 'action' | 'room'> & { user: string }> = []
  const { url } = await listen(t, {
    ...identified,
    authorize: async ({ action, room, client }) => {
      if (action === 'signal') asked.push({ action, room, user: client.id })
      return action !== 'signal' || client.id !== 'mallory'
    }
  })
  const alice = await user(t, url, 'alice')
  const mallory = await user(t, url, 'mallory')
  await alice.expect('presence')
  mallory.send({ type: 'signal', room: 'lobby', name: 'typing', cid: 's1' })
  t.strictSame(await mallory.expect('error'), { type: 'error', code: 'forbidden', message: 'not allowed to signal in room "lobby"', room: 'lobby', cid: 's1' })
  await marker(mallory, 'hello', alice)
  alice.send({ type: 'signal', room: 'lobby', name: 'typing' })
  t.match(await mallory.expect('signal'), { from: { id: 'alice' } })
  t.strictSame(asked, [{ action: 'signal', room: 'lobby', user: 'mallory' }, { action: 'signal', room: 'lobby', user: 'alice' }])
})

/** An in-process adapter whose broker is `broker` over the local one's methods: a user's broker, say. */
function wrapped (extra: Record<string, unknown>): Adapter {
  const local = new LocalAdapter(new MemoryStore({ size: 10 }), true)
  const b = local.broker
  return {
    broker: {
      publish: async (m, x) => await b.publish(m, x),
      entry: async (room, offset) => await b.entry(room, offset),
      subscribe: async (room) => await b.subscribe(room),
      unsubscribe: async (room) => await b.unsubscribe(room),
      recent: async (room, limit) => await b.recent(room, limit),
      since: async (room, offset) => await b.since(room, offset),
      ...extra
    },
    presence: local.presence,
    control: local.control,
    start: async (context) => await local.start(context),
    close: async () => await local.close()
  }
}

t.test('a broker without signal: signals reach this server\'s members only', async (t) => {
  const { url } = await listen(t, { ...identified, adapter: wrapped({}) })
  const alice = await user(t, url, 'alice')
  const bob = await user(t, url, 'bob')
  await alice.expect('presence')
  alice.send({ type: 'signal', room: 'lobby', name: 'typing' })
  t.match(await bob.expect('signal'), { from: { id: 'alice' } })
})

t.test('signals stuck in a broker are bounded: past the cap they are dropped and counted', async (t) => {
  let release = (): void => {}
  const stuck = new Promise<void>((resolve) => { release = resolve })
  t.teardown(() => release())
  let calls = 0
  const { app, url } = await listen(t, {
    ...identified,
    signalRate: false,
    rateLimit: false,
    adapter: wrapped({ signal: async () => { calls++; await stuck } })
  })
  const alice = await user(t, url, 'alice')
  for (let i = 0; i < MAX_SIGNALS_IN_FLIGHT + 5; i++) alice.send({ type: 'signal', room: 'lobby', name: 'typing' })
  await marker(alice, 'm')
  t.equal(calls, MAX_SIGNALS_IN_FLIGHT)
  t.equal(app.chat.stats().drops.signal_shed, 5)
})

t.test('a broker whose signal fails: the sender is not told, and its next frames go on', async (t) => {
  const { url } = await listen(t, { ...identified, adapter: wrapped({ signal: async () => { throw new Error('down') } }) })
  const alice = await user(t, url, 'alice')
  alice.send({ type: 'signal', room: 'lobby', name: 'typing' })
  await marker(alice, 'm')
  t.equal(alice.frames.length, 0, 'no error frame, nothing but the marker')
})
