import type { FastifyRequest } from 'fastify'
import t from 'tap'
import type WebSocket from 'ws'
import { LocalBroker } from '../../lib/broker/local-broker.js'
import { countUnread, MAX_SOCKET_POSITIONS, Reads } from '../../lib/chat/reads.js'
import type { ChatMessage } from '../../lib/protocol/wire.js'
import { Stats } from '../../lib/stats.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { Connection } from '../../lib/transport/connection.js'
import { Connections } from '../../lib/transport/connections.js'

const bob = { id: 'bob', name: 'bob' }

function message (offset: number, from = bob): ChatMessage {
  return { room: 'r', offset, ts: 0, from, text: `m${offset}` }
}

/** A connection whose socket is never written to: positions are bookkeeping. */
function detached (id: string): Connection {
  const context = { maxBufferedBytes: 1 << 20, behindBytes: 1 << 18, closeTimeout: 100, stats: new Stats() }
  return new Connection({ extensions: '' } as WebSocket, {} as FastifyRequest, id, id, undefined, context, null)
}

t.test('countUnread counts plain messages from others after the position, up to upTo', async (t) => {
  const alice = { id: 'alice', name: 'alice' }
  const edit = { ...message(4), type: 'edit' } as unknown as ChatMessage
  const messages = [message(1), message(2, alice), message(3), edit, message(5), message(6)]
  t.equal(countUnread(messages, 0, 'alice', 6), 4, '1, 3, 5, 6: not alice\'s 2, not the edit')
  t.equal(countUnread(messages, 3, 'alice', 6), 2)
  t.equal(countUnread(messages, 3, 'alice', 5), 1, 'nothing past upTo: it comes live after joined')
  t.equal(countUnread(messages, 6, 'alice', 6), 0)
  t.equal(countUnread([], 0, 'alice', 0), 0)
})

t.test('a reset\'s joined carries the socket\'s known position, at most the room\'s new latest', async (t) => {
  const store = new MemoryStore({ size: 10 })
  for (let i = 0; i < 5; i++) await store.append({ room: 'r', ts: 0, from: bob, text: 'x' })
  const reads = new Reads(new LocalBroker(store), new Connections(new Stats()), 10)
  const conn = detached('alice')
  conn.identified = true
  const page = await store.recent('r', 10)
  t.strictSame(await reads.joining(conn, 'r', page, false), { read: 0, unread: 5 })
  t.strictSame(reads.rejoining(conn, 'r', page), { read: 0, unread: 5 })
  await store.markRead('r', 'alice', 4)
  t.strictSame(await reads.joining(conn, 'r', page, false), { read: 4, unread: 1 })
  const lost = { epoch: 'new', offset: 2, messages: [message(1), message(2)] }
  t.strictSame(reads.rejoining(conn, 'r', lost), { read: 2, unread: 0 }, 'the history was lost: clamped')
  t.strictSame(await reads.unreadOf('alice'), { r: 1 })
})

t.test('a socket remembers at most MAX_SOCKET_POSITIONS rooms, the oldest forgotten first', async (t) => {
  const store = new MemoryStore({ size: 10 })
  const reads = new Reads(new LocalBroker(store), new Connections(new Stats()), 10)
  const guest = detached('guest')
  const empty = { epoch: 'e', offset: 0, messages: [] }
  await store.append({ room: 'first', ts: 0, from: bob, text: 'x' })
  reads.mark(guest, 'first', 1)
  // The memory store answers within microtasks, all run before the next macrotask.
  await new Promise((resolve) => setImmediate(resolve))
  const page = await store.recent('first', 10)
  t.strictSame(await reads.joining(guest, 'first', page, false), { read: 1, unread: 0 }, 'the guest\'s socket keeps it')
  for (let i = 0; i < MAX_SOCKET_POSITIONS; i++) reads.rejoining(guest, `room-${i}`, empty)
  t.strictSame(await reads.joining(guest, 'first', page, false), { read: 0, unread: 1 }, 'forgotten after MAX_SOCKET_POSITIONS other rooms')
  t.strictSame(await reads.unreadOf('guest'), {}, 'nothing stored for a guest')
})

t.test('without read methods on the broker, positions are per socket only', async (t) => {
  const store = new MemoryStore({ size: 10 })
  const local = new LocalBroker(store)
  const broker = { publish: local.publish.bind(local), subscribe: local.subscribe.bind(local), unsubscribe: local.unsubscribe.bind(local), recent: local.recent.bind(local), since: local.since.bind(local), entry: local.entry.bind(local) }
  const reads = new Reads(broker, new Connections(new Stats()), 10)
  t.strictSame(await reads.unreadOf('alice'), {})
})
