import t from 'tap'
import type { FastifyRequest } from 'fastify'
import type WebSocket from 'ws'
import { Connection } from '../../lib/transport/connection.js'
import type { ConnectionContext } from '../../lib/transport/connection.js'
import { Stats } from '../../lib/stats.js'
import { wsPair } from '../helpers/chat.js'

function connection (): Connection {
  const ctx: ConnectionContext = { maxBufferedBytes: 1024, behindBytes: 256, closeTimeout: 100, stats: new Stats() }
  // Only the room bookkeeping is exercised: no socket is touched.
  return new Connection({ extensions: '' } as WebSocket, {} as FastifyRequest, 'id', 'name', undefined, ctx, null)
}

t.test('room bookkeeping: none, one, several, and back', async (t) => {
  const conn = connection()
  t.same([conn.roomCount, conn.firstRoom, [...conn.roomNames()]], [0, undefined, []])
  t.equal(conn.removeRoom('a'), false)
  conn.addRoom('a')
  conn.addRoom('a')
  t.same([conn.roomCount, conn.firstRoom, [...conn.roomNames()]], [1, 'a', ['a']], 'adding twice is one room')
  t.equal(conn.inRoom('a'), true)
  t.equal(conn.inRoom('b'), false)
  conn.addRoom('b')
  conn.addRoom('c')
  t.same([conn.roomCount, conn.firstRoom, [...conn.roomNames()]], [3, 'a', ['a', 'b', 'c']], 'in join order')
  t.equal(conn.inRoom('c'), true)
  t.equal(conn.removeRoom('x'), false)
  t.equal(conn.removeRoom('a'), true)
  t.equal(conn.removeRoom('c'), true)
  t.same([conn.roomCount, conn.firstRoom, conn.inRoom('a')], [1, 'b', false], 'back to one')
  const copy = conn.view.rooms as Set<string>
  copy.add('z')
  t.equal(conn.inRoom('z'), false, 'the view\'s rooms are a copy')
  t.equal(conn.removeRoom('b'), true)
  t.equal(conn.roomCount, 0)
  conn.addRoom('d')
  conn.addRoom('e')
  conn.clearRooms()
  t.same([...conn.roomNames()], [])
})

t.test('every connection has its own key (its clientId), kept for its life', async (t) => {
  const conn = connection()
  const key = conn.key
  t.match(key, /^[\w-]{16}$/)
  t.equal(conn.key, key, 'kept')
  t.not(connection().key, key, 'another socket has another')
})

t.test('single-socket frames of every size and alphabet arrive intact and in order', async (t) => {
  const { server, client } = await wsPair(t)
  const ctx: ConnectionContext = { maxBufferedBytes: 1 << 20, behindBytes: 1 << 18, closeTimeout: 100, stats: new Stats() }
  const conn = new Connection(server, {} as FastifyRequest, 'id', 'name', undefined, ctx, null)
  // Short and long ASCII (one string, or header and text in one writev),
  // past the 16-bit length (a Buffer), and not ASCII (a Buffer).
  const texts = ['hi', 'a'.repeat(1023), 'b'.repeat(1024), 'c'.repeat(65535), 'd'.repeat(70_000), 'é', 'ü'.repeat(2000)]
  const got: string[] = []
  const all = new Promise<void>((resolve) => client.on('message', (data) => { if (got.push(data.toString()) === texts.length) resolve() }))
  for (const text of texts) t.equal(conn.sendRaw(text), true)
  await all
  t.same(got.map((x) => x.length), texts.map((x) => x.length))
  t.same(got, texts)
})

t.test('hold: a new list per hold, replacing the one before; release hands it back once', async (t) => {
  const conn = connection()
  t.equal(conn.held('r'), undefined)
  const first = conn.hold('r')
  const second = conn.hold('r')
  t.not(first, second)
  t.equal(conn.held('r'), second)
  const other = conn.hold('s')
  t.equal(conn.release('r'), second)
  t.equal(conn.release('r'), undefined)
  t.equal(conn.held('s'), other, 'other rooms keep theirs')
  conn.release()
  t.equal(conn.held('s'), undefined, 'release() lets go of all of them')
})

t.test('writeBudget: maxBufferedBytes less what waits to be written', async (t) => {
  const { server, client } = await wsPair(t)
  const maxBufferedBytes = 64 << 20
  const ctx: ConnectionContext = { maxBufferedBytes, behindBytes: 1 << 18, closeTimeout: 100, stats: new Stats() }
  const conn = new Connection(server, {} as FastifyRequest, 'id', 'name', undefined, ctx, null)
  t.equal(conn.writeBudget, maxBufferedBytes, 'nothing waiting')
  // A reader that stops reading: what the kernel does not take waits in the socket.
  const socket = (client as unknown as { _socket: { pause: () => void } })._socket
  socket.pause()
  const chunk = 'x'.repeat(1 << 20)
  for (let i = 0; i < 32; i++) conn.sendRaw(chunk)
  t.ok(conn.writeBudget < maxBufferedBytes, `${maxBufferedBytes - conn.writeBudget} bytes waiting`)
  t.ok(conn.writeBudget > maxBufferedBytes - 33 * (1 << 20), 'no more than was written')
})
