import { once } from 'node:events'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyRequest } from 'fastify'
import WebSocket from 'ws'
import { Rooms } from '../../lib/chat/rooms.js'
import type { Room } from '../../lib/chat/rooms.js'
import { SignalFanout, SignalGate } from '../../lib/chat/signals.js'
import { Stats } from '../../lib/stats.js'
import { Connection } from '../../lib/transport/connection.js'
import type { ConnectionContext } from '../../lib/transport/connection.js'
import type { SignalFrame } from '../../lib/protocol/wire.js'
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

t.test('a room\'s signals of one iteration go out together, to every member but the sender', async (t) => {
  const { stats, one, two, a, b } = await aliceAndBob(t)
  const room = roomOf('lobby', [a, b])
  const fanout = new SignalFanout(stats, () => false)
  t.teardown(() => fanout.close())
  const atA = received(one.client)
  const atB = received(two.client)
  const second = { ...frame, from: { id: 'b', name: 'bob' } }
  const twoAtB = new Promise<void>((resolve) => two.client.on('message', () => { if (atB.length === 2) resolve() }))
  const twoAtA = new Promise<void>((resolve) => one.client.on('message', () => { if (atA.length === 2) resolve() }))
  fanout.add(room, frame, a.key)
  fanout.add(room, second, b.key)
  fanout.add(room, { ...frame, room: 'gone' }, null)
  t.strictSame([atA, atB], [[], []], 'nothing before the end of the iteration')
  await within(Promise.all([twoAtB, twoAtA]))
  t.strictSame(atB, [frame, { ...frame, room: 'gone' }], 'bob gets alice\'s, not his own')
  t.strictSame(atA, [second, { ...frame, room: 'gone' }], 'alice gets bob\'s, not her own')
  t.equal(stats.drops.signal_shed, 0)
})

t.test('under congestion nobody gets signals, each miss is counted; a replaying member is skipped', async (t) => {
  const { stats, one, a, b } = await aliceAndBob(t)
  let congested = true
  const fanout = new SignalFanout(stats, () => congested)
  t.teardown(() => fanout.close())
  fanout.add(roomOf('lobby', [a, b]), frame, null)
  fanout.flush()
  t.equal(stats.drops.signal_shed, 2, 'each recipient missed counts')
  congested = false
  b.hold('lobby')
  const atA = once(one.client, 'message')
  fanout.add(roomOf('lobby', [a, b]), frame, null)
  fanout.flush()
  await within(atA)
  t.equal(stats.drops.signal_shed, 2, 'a member whose join is replaying gets none, and that is not a drop')
  b.release('lobby')
})

t.test('a room\'s signals past 64 KiB are written at once; close drops what is pending', async (t) => {
  const stats = new Stats()
  const ctx: ConnectionContext = { maxBufferedBytes: 64 << 20, behindBytes: 1 << 20, closeTimeout: 100, stats }
  const { server, client } = await wsPair(t)
  const conn = new Connection(server, request, 'b', 'bob', undefined, ctx, null)
  const room = roomOf('lobby', [conn])
  const fanout = new SignalFanout(stats, () => false)
  const big = { ...frame, data: 'x'.repeat(250) }
  const frames = received(client)
  let count = 0
  while (count * 300 < 64 * 1024) {
    fanout.add(room, big, null)
    count++
  }
  const arrived = new Promise<void>((resolve) => client.on('message', () => { if (frames.length === count) resolve() }))
  await within(arrived)
  fanout.add(room, frame, null)
  fanout.close()
  await new Promise((resolve) => setImmediate(resolve))
  const marker = once(client, 'message')
  conn.sendRaw('"marker"')
  await within(marker)
  t.equal(frames.length, count + 1, 'the full batch arrived without a flush; the one closed over did not')
  t.equal(frames.at(-1), 'marker')
})

t.test('a recipient that is behind loses the signals, and is not closed for them', async (t) => {
  const stats = new Stats()
  const ctx: ConnectionContext = { maxBufferedBytes: 64 << 20, behindBytes: 1 << 16, closeTimeout: 100, stats }
  const { server, client } = await wsPair(t)
  const conn = new Connection(server, request, 'b', 'bob', undefined, ctx, null)
  // A reader that stops reading: what the kernel does not take waits in the socket.
  const socket = (client as unknown as { _socket: { pause: () => void } })._socket
  socket.pause()
  const chunk = 'x'.repeat(1 << 20)
  for (let i = 0; i < 32; i++) conn.sendRaw(chunk)
  t.ok(ctx.maxBufferedBytes - conn.writeBudget > ctx.behindBytes, 'the socket is behind')
  const fanout = new SignalFanout(stats, () => false)
  fanout.add(roomOf('lobby', [conn]), frame, null)
  fanout.flush()
  t.equal(stats.drops.signal_shed, 1)
  t.equal(stats.drops.slow_consumer, 0, 'a signal does not close a lagging reader')
  t.equal(conn.closedByServer, false)
})

t.test('nothing is written to a socket that is not open', async (t) => {
  const { server, client } = await wsPair(t)
  const stats = new Stats()
  const ctx: ConnectionContext = { maxBufferedBytes: 1024, behindBytes: 256, closeTimeout: 100, stats }
  const conn = new Connection(server, request, 'b', 'bob', undefined, ctx, null)
  const closed = once(server, 'close')
  client.close()
  await within(closed)
  const fanout = new SignalFanout(stats, () => false)
  fanout.add(roomOf('lobby', [conn]), frame, null)
  fanout.flush()
  t.equal(stats.drops.signal_shed, 1, 'counted as missed')
})
