import t from 'tap'
import type { FastifyRequest } from 'fastify'
import type WebSocket from 'ws'
import { Connection } from '../lib/connection.js'
import type { ConnectionContext } from '../lib/connection.js'
import { Stats } from '../lib/stats.js'

function connection (): Connection {
  const ctx: ConnectionContext = { maxBufferedBytes: 1024, behindBytes: 256, closeTimeout: 100, stats: new Stats() }
  // Only the room bookkeeping is exercised: no socket is touched.
  return new Connection({ extensions: '' } as WebSocket, {} as FastifyRequest, 'id', 'name', ctx, null)
}

t.test('room bookkeeping: none, one, several, and back', async (t) => {
  const conn = connection()
  t.same([conn.roomCount, conn.firstRoom, [...conn.rooms]], [0, undefined, []])
  t.equal(conn.removeRoom('a'), false)
  conn.addRoom('a')
  conn.addRoom('a')
  t.same([conn.roomCount, conn.firstRoom, [...conn.roomNames()]], [1, 'a', ['a']], 'adding twice is one room')
  t.equal(conn.inRoom('a'), true)
  t.equal(conn.inRoom('b'), false)
  conn.addRoom('b')
  conn.addRoom('c')
  t.same([conn.roomCount, conn.firstRoom, [...conn.rooms]], [3, 'a', ['a', 'b', 'c']], 'in join order')
  t.equal(conn.inRoom('c'), true)
  t.equal(conn.removeRoom('x'), false)
  t.equal(conn.removeRoom('a'), true)
  t.equal(conn.removeRoom('c'), true)
  t.same([conn.roomCount, conn.firstRoom, conn.inRoom('a')], [1, 'b', false], 'back to one')
  const copy = conn.rooms as Set<string>
  copy.add('z')
  t.equal(conn.inRoom('z'), false, 'rooms is a copy')
  t.equal(conn.removeRoom('b'), true)
  t.equal(conn.roomCount, 0)
  conn.addRoom('d')
  conn.addRoom('e')
  conn.clearRooms()
  t.same([...conn.roomNames()], [])
})

t.test('a key is made only when asked for', async (t) => {
  const conn = connection()
  t.equal(conn.keyIfSet, null)
  const key = conn.key
  t.match(key, /^[\w-]{16}$/)
  t.equal(conn.keyIfSet, key)
  t.equal(conn.key, key, 'and kept')
})
