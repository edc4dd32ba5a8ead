import t from 'tap'
import { Inbox } from '../../lib/client/inbox.js'
import { Joins } from '../../lib/client/joins.js'
import { testParts } from '../helpers/client-parts.js'
import { withFakeClock } from '../helpers/fake-clock.js'

function inbox (): { parts: ReturnType<typeof testParts>, inbox: Inbox, welcomed: number[] } {
  const parts = testParts()
  const welcomed: number[] = []
  return { parts, inbox: new Inbox(parts, new Joins(parts), () => welcomed.push(parts.state.opened)), welcomed }
}

const send = (box: Inbox, frame: object): void => box.receive(JSON.stringify(frame))

t.test('what is not JSON is dropped without an event', async (t) => {
  const { parts, inbox: box } = inbox()
  box.receive('not json')
  box.receive('{"type":')
  t.same(parts.emitted, [])
})

t.test('welcome: the link is open, the identity kept, the event emitted, then the connection goes on', async (t) => {
  const { parts, inbox: box, welcomed } = inbox()
  send(box, { type: 'welcome', id: 'u1', clientId: 'c1', name: 'ann', resume: 'tok' })
  t.same(welcomed, [1], 'after the link heard it')
  t.equal(parts.me.id, 'u1')
  t.equal(parts.me.resume, 'tok')
  t.same(parts.emitted, ['welcome'])
})

t.test('joined, then message: history settles sends, the duplicate is dropped, the count is told', async (t) => {
  const { parts, inbox: box } = inbox()
  parts.rooms.want('a')
  parts.rooms.dial()
  const message = { room: 'a', offset: 1, ts: 1, from: { id: 'u1', name: 'ann' }, text: 'hi', cid: 'm1' }
  parts.sends.sent({ type: 'message', text: 'hi', cid: 'm1' })
  send(box, { type: 'joined', room: 'a', epoch: 'e', offset: 1, recovered: true, history: [message], users: [], count: 2 })
  t.same(parts.sends.drain().unclear, [], 'the echo in the history settled it')
  send(box, { type: 'message', ...message })
  send(box, { type: 'message', ...message, offset: 2, cid: undefined })
  t.same(parts.emitted, ['joined', 'count', 'message'], 'offset 1 was in the history already')
})

t.test('a refused join forgets the room; a refused publish keeps it', async (t) => {
  const { parts, inbox: box } = inbox()
  parts.rooms.want('a')
  parts.rooms.want('b')
  send(box, { type: 'error', code: 'forbidden', message: 'no', room: 'a' })
  send(box, { type: 'error', code: 'forbidden', message: 'no', room: 'b', cid: 'm1' })
  t.equal(parts.rooms.wants('a'), false)
  t.equal(parts.rooms.wants('b'), true)
  t.same(parts.emitted, ['error', 'error'])
})

t.test('an unavailable join is asked again after the backoff; a refused direct ask is dropped', async (t) => {
  t.intercept(Math, 'random', { value: () => 0.5 })
  await withFakeClock((clock) => {
    const { parts, inbox: box } = inbox()
    parts.rooms.want('a')
    parts.directs.ask('u2', 'c2')
    send(box, { type: 'error', code: 'unavailable', message: 'later', room: 'a' })
    send(box, { type: 'error', code: 'forbidden', message: 'no', room: 'dm-x', cid: 'c2' })
    t.equal(parts.directs.askOf('u2'), undefined)
    clock.tick(1000)
    t.same(parts.written, [{ type: 'join', room: 'a' }])
  })
})

t.test('left and renamed update the state before their events', async (t) => {
  const { parts, inbox: box } = inbox()
  parts.rooms.want('a')
  send(box, { type: 'welcome', id: 'u1', clientId: 'c1', name: 'ann' })
  send(box, { type: 'renamed', name: 'anna', previous: 'ann' })
  send(box, { type: 'left', room: 'a', reason: 'removed' })
  send(box, { type: 'refreshed', expiresAt: 42 })
  t.equal(parts.me.name, 'anna')
  t.equal(parts.me.expiresAt, 42)
  t.equal(parts.rooms.wants('a'), false)
  t.same(parts.emitted, ['welcome', 'renamed', 'left', 'refreshed'])
})

t.test('read frames and messages keep the unread counts; a joined behind a read made meanwhile sends it again', async (t) => {
  const { parts, inbox: box } = inbox()
  const unread: unknown[] = []
  parts.events.on('unread', (event) => unread.push(event))
  send(box, { type: 'welcome', id: 'me', clientId: 'c1', name: 'me' })
  parts.rooms.want('a')
  parts.rooms.dial()
  const from = { id: 'bob', name: 'bob' }
  send(box, { type: 'joined', room: 'a', epoch: 'e', offset: 2, recovered: false, history: [{ room: 'a', offset: 1, ts: 1, from, text: 'x' }, { room: 'a', offset: 2, ts: 1, from, text: 'y' }], users: [], count: 2, read: 0, unread: 2 })
  send(box, { type: 'message', room: 'a', offset: 3, ts: 1, from, text: 'z' })
  send(box, { type: 'read', room: 'a', offset: 2 })
  t.same(unread, [{ room: 'a', read: 0, unread: 2 }, { room: 'a', read: 0, unread: 3 }, { room: 'a', read: 2, unread: 1 }])
  parts.reads.moved('a', 3)
  parts.written.splice(0)
  send(box, { type: 'joined', room: 'a', epoch: 'e', offset: 3, recovered: true, history: [], users: [], count: 2, read: 2, unread: 1 })
  t.same(parts.written, [{ type: 'read', room: 'a', offset: 3 }], 'the server hears the read it missed')
  send(box, { type: 'left', room: 'a' })
  t.equal(parts.reads.get('a'), undefined, 'forgotten with the room')
})
