import { once } from 'node:events'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyRequest } from 'fastify'
import WebSocket from 'ws'
import { Rooms } from '../../lib/chat/rooms.js'
import type { Room } from '../../lib/chat/rooms.js'
import { Fanout, MAX_BATCH_BYTES } from '../../lib/chat/fanout.js'
import { SignalGate } from '../../lib/chat/signals.js'
import { Stats } from '../../lib/stats.js'
import { Connection } from '../../lib/transport/connection.js'
import type { ConnectionContext } from '../../lib/transport/connection.js'
import type { ChatMessage, SignalFrame } from '../../lib/protocol/wire.js'
import { within, wsPair } from '../helpers/chat.js'

const request = { ip: '127.0.0.1' } as FastifyRequest

function detached (): Connection {
  const ctx: ConnectionContext = { maxBufferedBytes: 1024, behindBytes: 256, closeTimeout: 100, stats: new Stats() }
  return new Connection({ extensions: '' } as WebSocket, request, 'id', 'name', undefined, ctx, null)
}

const frame: SignalFrame = { type: 'signal', room: 'lobby', name: 'typing', from: { id: 'a', name: 'alice' } }

t.test('the gate accepts the configured names only', async (t) => {
  const gate = new SignalGate(new Set(['typing', 'x.y']), null)
  t.equal(gate.accepts('typing'), true)
  t.equal(gate.accepts('x.y'), true)
  t.equal(gate.accepts('recording'), false)
  t.equal(new SignalGate(new Set(), null).accepts('typing'), false, 'an empty list accepts none')
})

t.test('each socket has its own bucket: a burst, then the rate', async (t) => {
  const gate = new SignalGate(new Set(['typing']), { messages: 5, intervalMs: 1000, burst: 5 })
  const a = detached()
  const b = detached()
  const start = 1000
  for (let i = 0; i < 5; i++) t.equal(gate.take(a, start), true, `burst ${i + 1}`)
  t.equal(gate.take(a, start), false, 'the sixth at once is over the limit')
  t.equal(gate.take(b, start), true, 'another socket is not held back by the first')
  t.equal(gate.take(a, start + 100), false, 'a tenth of a second refills half a token')
  t.equal(gate.take(a, start + 200), true, 'a fifth of a second refills one')
  t.equal(gate.take(a, start + 200), false)
})

t.test('without a signal rate every signal passes', async (t) => {
  const gate = new SignalGate(new Set(['typing']), null)
  const a = detached()
  for (let i = 0; i < 100; i++) t.equal(gate.take(a, 0), true)
})

/** A room of `members`, as the hub keeps it. */
function roomOf (name: string, members: Connection[]): Room<Connection> {
  const rooms = new Rooms<Connection>()
  for (const conn of members) rooms.add(conn, name, async () => {})
  return rooms.get(name) as Room<Connection>
}

/** Every frame `client` receives, parsed. */
function received (client: WebSocket): unknown[] {
  const frames: unknown[] = []
  client.on('message', (data) => frames.push(JSON.parse(String(data))))
  return frames
}

/** Two connections over real sockets, alice (`a`) and bob (`b`), sharing one Stats. */
async function aliceAndBob (t: Test): Promise<{ stats: Stats, one: Awaited<ReturnType<typeof wsPair>>, two: Awaited<ReturnType<typeof wsPair>>, a: Connection, b: Connection }> {
  const stats = new Stats()
  const ctx: ConnectionContext = { maxBufferedBytes: 64 << 20, behindBytes: 1 << 16, closeTimeout: 100, stats }
  const one = await wsPair(t)
  const two = await wsPair(t)
  const a = new Connection(one.server, request, 'a', 'alice', undefined, ctx, null)
  const b = new Connection(two.server, request, 'b', 'bob', undefined, ctx, null)
  return { stats, one, two, a, b }
}

/** A fan-out whose holding must not be used: nobody here replays a join. */
function fanoutOf (t: Test, stats: Stats): Fanout {
  const fanout = new Fanout(stats, { hold: () => t.fail('nobody is holding') })
  t.teardown(() => fanout.flush())
  return fanout
}

const signal = (from: SignalFrame = frame): string => JSON.stringify(from)
const stored: ChatMessage = { room: 'lobby', offset: 1, ts: 0, from: { id: 'c', name: 'carol' }, text: 'hello' }

t.test('a room\'s signals go out with its messages of the same iteration, in order, to every member but the sender', async (t) => {
  const { stats, one, two, a, b } = await aliceAndBob(t)
  const room = roomOf('lobby', [a, b])
  const fanout = fanoutOf(t, stats)
  const atA = received(one.client)
  const atB = received(two.client)
  const second = { ...frame, from: { id: 'b', name: 'bob' } }
  const threeAtB = new Promise<void>((resolve) => two.client.on('message', () => { if (atB.length === 2) resolve() }))
  const twoAtA = new Promise<void>((resolve) => one.client.on('message', () => { if (atA.length === 2) resolve() }))
  fanout.signal(room, signal(), a.key)
  fanout.message(room, stored, null)
  fanout.signal(room, signal(second), b.key)
  t.strictSame([atA, atB], [[], []], 'nothing before the end of the iteration')
  await within(Promise.all([threeAtB, twoAtA]))
  t.match(atB, [frame, { type: 'message', text: 'hello' }], 'bob gets alice\'s and the message, not his own')
  t.match(atA, [{ type: 'message', text: 'hello' }, second], 'alice gets the message and bob\'s, not her own')
  t.equal(atA.length + atB.length, 4)
  t.equal(stats.drops.signal_shed, 0)
  t.equal(stats.deliveriesOut, 2, 'signals are not counted as deliveries')
})

t.test('a room\'s signals past 64 KiB are written at once, without waiting for the iteration to end', async (t) => {
  const stats = new Stats()
  const ctx: ConnectionContext = { maxBufferedBytes: 64 << 20, behindBytes: 1 << 20, closeTimeout: 100, stats }
  const { server, client } = await wsPair(t)
  const conn = new Connection(server, request, 'b', 'bob', undefined, ctx, null)
  const room = roomOf('lobby', [conn])
  const fanout = fanoutOf(t, stats)
  const big = signal({ ...frame, data: 'x'.repeat(250) })
  const frames = received(client)
  let count = 0
  do {
    fanout.signal(room, big, null)
    count++
  } while (room.batch !== null && count < 1000)
  t.equal(room.batch, null, 'the full batch left the room within the iteration')
  // Each framed with a 4-byte header (its length is over 125).
  const framed = big.length + 4
  t.ok(count * framed >= MAX_BATCH_BYTES && (count - 1) * framed < MAX_BATCH_BYTES, `once it held 64 KiB (${count} signals)`)
  const arrived = new Promise<void>((resolve) => client.on('message', () => { if (frames.length === count) resolve() }))
  await within(arrived)
  t.equal(frames.length, count)
})

t.test('a recipient that is behind gets the messages but not the signals, and is not closed for them', async (t) => {
  const stats = new Stats()
  const ctx: ConnectionContext = { maxBufferedBytes: 64 << 20, behindBytes: 1 << 16, closeTimeout: 100, stats }
  const { server, client } = await wsPair(t)
  const conn = new Connection(server, request, 'b', 'bob', undefined, ctx, null)
  // A reader that stops reading: what the kernel does not take waits in the socket.
  const socket = (client as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  socket.pause()
  const chunk = '"' + 'x'.repeat(1 << 20) + '"'
  for (let i = 0; i < 32; i++) conn.sendRaw(chunk)
  t.ok(ctx.maxBufferedBytes - conn.writeBudget > ctx.behindBytes, 'the socket is behind')
  const room = roomOf('lobby', [conn])
  const fanout = fanoutOf(t, stats)
  fanout.signal(room, signal(), null)
  fanout.message(room, stored, null)
  fanout.flush()
  t.equal(stats.drops.signal_shed, 1)
  t.equal(stats.drops.slow_consumer, 0, 'a signal does not close a lagging reader')
  t.equal(conn.closedByServer, false)
  const frames = received(client)
  const caughtUp = new Promise<void>((resolve) => client.on('message', () => { if (frames.length === 33) resolve() }))
  socket.resume()
  await within(caughtUp, 10_000)
  t.match(frames.at(-1), { type: 'message', text: 'hello' }, 'the message came after the backlog, the signal did not')
})

t.test('a socket that is not open gets nothing, and the fan-out goes on', async (t) => {
  const { stats, one, two, a, b } = await aliceAndBob(t)
  const closed = once(one.server, 'close')
  one.client.close()
  await within(closed)
  const atB = received(two.client)
  const fanout = fanoutOf(t, stats)
  const arrived = once(two.client, 'message')
  fanout.signal(roomOf('lobby', [a, b]), signal(), null)
  fanout.flush()
  await within(arrived)
  t.strictSame(atB, [frame])
  t.equal(a.closedByServer, false)
})
