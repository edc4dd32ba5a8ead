import t from 'tap'
import { Emitter } from '../../lib/client/emitter.js'
import { Reads } from '../../lib/client/reads.js'
import type { ChatEvents, RoomUnread } from '../../lib/client/types.js'
import type { ChatMessage, JoinedFrame } from '../../lib/protocol/wire.js'

const bob = { id: 'bob', name: 'bob' }
const me = { id: 'me', name: 'me' }

function message (offset: number, from = bob, room = 'r'): ChatMessage {
  return { room, offset, ts: 0, from, text: `m${offset}` }
}

function joined (fields: Partial<JoinedFrame> = {}): JoinedFrame {
  return { type: 'joined', room: 'r', epoch: 'e1', offset: 0, recovered: false, history: [], users: [], count: 1, ...fields }
}

function reads (): { reads: Reads, events: RoomUnread[] } {
  const emitter = new Emitter<ChatEvents>()
  const events: RoomUnread[] = []
  emitter.on('unread', (event) => events.push(event))
  return { reads: new Reads(emitter), events }
}

t.test('joined gives the position and the count; messages from others raise it, own ones do not', async (t) => {
  const { reads: r, events } = reads()
  t.equal(r.get('r'), undefined, 'nothing before joined')
  t.equal(r.latest('r'), 0)
  t.equal(r.onJoined(joined({ offset: 4, read: 1, unread: 2, history: [message(1), message(2), message(3, me), message(4)] }), 'me'), null)
  t.strictSame(r.get('r'), { room: 'r', read: 1, unread: 2 })
  t.strictSame(events, [{ room: 'r', read: 1, unread: 2 }], 'told')
  r.onMessage(message(5), 'me')
  r.onMessage(message(6, me), 'me')
  r.onMessage(message(1, bob, 'elsewhere'), 'me')
  t.strictSame(r.get('r'), { room: 'r', read: 1, unread: 3 }, 'bob\'s counts, mine does not')
  t.equal(r.latest('r'), 6)
  t.equal(events.length, 2, 'told once, for bob\'s')
  const typed = { ...message(7), type: 'edit' } as unknown as ChatMessage
  r.onMessage(typed, 'me')
  t.equal(r.get('r')?.unread, 3, 'an edit entry is not a new message')
})

t.test('moving the position drops what is read; lower offsets change nothing', async (t) => {
  const { reads: r } = reads()
  r.onJoined(joined({ offset: 5, read: 0, unread: 5, history: [1, 2, 3, 4, 5].map((o) => message(o)) }), 'me')
  t.equal(r.moved('r', 2), true)
  t.strictSame(r.get('r'), { room: 'r', read: 2, unread: 3 })
  t.equal(r.moved('r', 2), false, 'equal')
  t.equal(r.moved('r', 1), false, 'lower')
  t.equal(r.moved('other', 3), false, 'a room not joined')
  t.equal(r.moved('r', 5), true)
  t.strictSame(r.get('r'), { room: 'r', read: 5, unread: 0 })
})

t.test('unread the client never saw (beyond its history) is counted until a read passes the oldest it saw', async (t) => {
  const { reads: r } = reads()
  // The server counted 10; the joined replayed the latest 3.
  r.onJoined(joined({ offset: 12, read: 2, unread: 10, history: [message(10), message(11), message(12)] }), 'me')
  t.equal(r.get('r')?.unread, 10)
  r.moved('r', 5)
  t.equal(r.get('r')?.unread, 10, 'somewhere before 10: the client cannot tell how many are left, so none is taken off')
  r.moved('r', 10)
  t.equal(r.get('r')?.unread, 2, 'past the oldest seen: only 11 and 12 are left')
  r.onJoined(joined({ offset: 12, read: 2, unread: 10, history: [message(12)] }), 'me')
  t.equal(r.get('r')?.read, 10, 'a joined behind what this client read, same epoch: the client\'s own stands')
})

t.test('a joined behind a read made meanwhile asks to send it again; another epoch starts over', async (t) => {
  const { reads: r } = reads()
  r.onJoined(joined({ offset: 3, read: 0, unread: 3, history: [message(1), message(2), message(3)] }), 'me')
  r.moved('r', 3)
  t.equal(r.onJoined(joined({ offset: 4, read: 1, unread: 3, history: [message(2), message(3), message(4)] }), 'me'), 3, 'send 3 again')
  t.strictSame(r.get('r'), { room: 'r', read: 3, unread: 1 }, 'only 4 is unread')
  t.equal(r.onJoined(joined({ epoch: 'e2', offset: 1, read: 0, unread: 1, history: [message(1)] }), 'me'), null, 'offsets of another epoch mean nothing')
  t.strictSame(r.get('r'), { room: 'r', read: 0, unread: 1 })
  r.onJoined(joined({ epoch: 'e2', offset: 1, history: [message(1)] }), 'me')
  t.strictSame(r.get('r'), { room: 'r', read: 0, unread: 1 }, 'a server without read and unread: counted from the history')
  r.delete('r')
  t.equal(r.get('r'), undefined)
})

t.test('a room with more unread than it remembers keeps counting them', async (t) => {
  const { reads: r } = reads()
  r.onJoined(joined({ offset: 0 }), 'me')
  for (let offset = 1; offset <= 1005; offset++) r.onMessage(message(offset), 'me')
  t.equal(r.get('r')?.unread, 1005)
  r.moved('r', 1000)
  t.equal(r.get('r')?.unread, 5)
})
