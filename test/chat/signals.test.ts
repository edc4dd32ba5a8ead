import { once } from 'node:events'
import t from 'tap'
import type { FastifyRequest } from 'fastify'
import type WebSocket from 'ws'
import { SignalGate, deliverSignal } from '../../lib/chat/signals.js'
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

t.test('deliverSignal writes to members, not the excluded socket, and sheds under congestion', async (t) => {
  const stats = new Stats()
  const ctx: ConnectionContext = { maxBufferedBytes: 64 << 20, behindBytes: 1 << 16, closeTimeout: 100, stats }
  const one = await wsPair(t)
  const two = await wsPair(t)
  const a = new Connection(one.server, request, 'a', 'alice', undefined, ctx, null)
  const b = new Connection(two.server, request, 'b', 'bob', undefined, ctx, null)

  const got = once(two.client, 'message')
  t.equal(deliverSignal([a, b], frame, a.key, false, stats), 1, 'the sender is skipped')
  const [data] = await within(got)
  t.strictSame(JSON.parse(String(data)), frame)

  t.equal(deliverSignal([a, b], frame, null, true, stats), 0, 'congested: nobody is written to')
  t.equal(stats.drops.signal_shed, 2, 'each skipped recipient is counted')

  b.hold('lobby')
  t.equal(deliverSignal([b], frame, null, false, stats), 0, 'a member whose join is replaying gets no signal')
  t.equal(stats.drops.signal_shed, 2, 'and that is not a drop')
  b.release('lobby')
})

t.test('a recipient that is behind loses the signal, and is not closed for it', async (t) => {
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
  t.equal(conn.sendEphemeral('{}'), false)
  t.equal(deliverSignal([conn], frame, null, false, stats), 0)
  t.equal(stats.drops.signal_shed, 1)
  t.equal(stats.drops.slow_consumer, 0, 'a signal does not close a lagging reader')
  t.equal(conn.closedByServer, false)
})

t.test('sendEphemeral writes nothing to a socket that is not open', async (t) => {
  const { server, client } = await wsPair(t)
  const stats = new Stats()
  const ctx: ConnectionContext = { maxBufferedBytes: 1024, behindBytes: 256, closeTimeout: 100, stats }
  const conn = new Connection(server, request, 'b', 'bob', undefined, ctx, null)
  const closed = once(server, 'close')
  client.close()
  await within(closed)
  t.equal(conn.sendEphemeral('{}'), false)
})
