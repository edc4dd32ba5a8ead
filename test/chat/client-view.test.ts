import type { FastifyRequest } from 'fastify'
import t from 'tap'
import type WebSocket from 'ws'
import { ClientView } from '../../lib/chat/client-view.js'
import { Stats } from '../../lib/stats.js'
import { Connection } from '../../lib/transport/connection.js'

/** What a view reads from, as a connection would have it: fields that change under the view. */
function source (): { id: string, key: string, name: string, data: unknown, request: FastifyRequest, rooms: string[], roomNames: () => Iterable<string> } {
  const s = {
    id: 'u1',
    key: 'socket-1',
    name: 'Alice',
    data: { plan: 'pro' } as unknown,
    request: { url: '/chat' } as FastifyRequest,
    rooms: ['lobby'],
    roomNames: () => s.rooms
  }
  return s
}

t.test('reads through to the connection: id, name (after a rename too), rooms, data and request', async (t) => {
  const from = source()
  const view = new ClientView(from)
  t.equal(view.id, 'u1')
  t.equal(view.clientId, 'socket-1', 'the socket\'s own id')
  t.equal(view.name, 'Alice')
  t.strictSame([...view.rooms], ['lobby'])
  t.equal(view.data, from.data, 'identify\'s data itself')
  t.equal(view.request, from.request)

  from.name = 'Ally'
  from.rooms = ['lobby', 'dev']
  t.equal(view.name, 'Ally', 'a rename shows')
  t.strictSame([...view.rooms], ['lobby', 'dev'], 'so do joins')
  t.equal(new ClientView({ ...from, data: undefined }).data, undefined, 'no data: undefined')
})

t.test('rooms is a copy', async (t) => {
  const from = source()
  const view = new ClientView(from)
  const rooms = view.rooms as Set<string>
  rooms.add('sneaky')
  rooms.delete('lobby')
  t.strictSame(from.rooms, ['lobby'], 'the connection\'s rooms are untouched')
  t.strictSame([...view.rooms], ['lobby'])
  t.not(view.rooms, view.rooms, 'a new copy each time')
})

t.test('read-only: frozen, and assigning or adding throws', async (t) => {
  const from = source()
  const view = new ClientView(from)
  t.ok(Object.isFrozen(view))
  const writable = view as unknown as Record<string, unknown>
  // Test modules are strict mode code: a refused write throws instead of doing nothing.
  for (const key of ['id', 'name', 'rooms', 'data', 'request']) {
    t.throws(() => { writable[key] = 'changed' }, TypeError, `assigning ${key}`)
  }
  t.throws(() => { writable.socket = {} }, TypeError, 'adding a field')
  t.throws(() => Object.defineProperty(view, 'name', { value: 'x' }), TypeError, 'redefining a field')
  t.equal(view.name, 'Alice')
  t.equal(from.name, 'Alice')
})

t.test('nothing but the documented fields: no way to the socket or to close it', async (t) => {
  const ctx = { maxBufferedBytes: 1024, behindBytes: 256, closeTimeout: 100, stats: new Stats() }
  const socket = { extensions: '' } as WebSocket
  const conn = new Connection(socket, {} as FastifyRequest, 'u1', 'Alice', undefined, ctx, null)
  const view = conn.view
  t.equal(conn.view, view, 'one view per connection')
  t.strictSame(Reflect.ownKeys(view), [], 'no own fields')
  const prototype = Object.getPrototypeOf(view) as object
  t.strictSame(Reflect.ownKeys(prototype).sort(), ['clientId', 'constructor', 'data', 'id', 'name', 'request', 'rooms'])
  t.equal(Object.getPrototypeOf(prototype), Object.prototype)
  const loose = view as unknown as Record<string, unknown>
  for (const key of ['socket', 'close', 'send', 'sendRaw', 'deliver', 'conn', 'source']) t.equal(loose[key], undefined, key)
})
