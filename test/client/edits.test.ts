import t from 'tap'
import { Edits } from '../../lib/client/edits.js'
import { Inbox } from '../../lib/client/inbox.js'
import { Joins } from '../../lib/client/joins.js'
import type { ChatMessage, DeleteFrame, EditFrame } from '../../lib/protocol/wire.js'
import { testParts } from '../helpers/client-parts.js'

const alice = { id: 'alice', name: 'Alice' }
const mod = { id: 'mod', name: 'Mod' }
const message = (offset: number, text = `m${offset}`, room = 'a'): ChatMessage => ({ room, offset, ts: offset * 10, from: alice, text })
const edit = (offset: number, of: number, text: string, from = alice): EditFrame => ({ type: 'edit', room: 'a', offset, ts: offset * 10, from, of, text })
const del = (offset: number, of: number, from = alice): DeleteFrame => ({ type: 'delete', room: 'a', offset, ts: offset * 10, from, of })

t.test('an edit changes the text and says by whom; a delete empties it; both are applied once', async (t) => {
  const edits = new Edits()
  edits.apply({ ...message(1), cid: 'c1' })
  edits.apply(message(2))
  t.match(edits.apply(edit(3, 1, 'fixed')), { offset: 1, text: 'fixed', edited: { ts: 30, by: alice, offset: 3 } })
  t.strictSame(edits.message('a', 1), { room: 'a', offset: 1, ts: 10, from: alice, text: 'fixed', cid: 'c1', edited: { ts: 30, by: alice, offset: 3 } })
  t.match(edits.apply(edit(4, 1, 'again', mod)), { text: 'again', edited: { by: mod, offset: 4 } }, 'a moderator\'s edit')
  t.match(edits.apply(del(5, 1, mod)), { text: '', deleted: { ts: 50, by: mod, offset: 5 } })
  t.equal(edits.apply(edit(6, 1, 'back from the dead')), null, 'an edit of a deleted message changes nothing')
  t.equal(edits.apply(del(7, 1)), null, 'nor a second delete')
  t.equal(edits.message('a', 1)?.text, '')
  t.equal(edits.apply(edit(8, 99, 'x')), null, 'a message not held')
  t.equal(edits.apply({ ...edit(9, 2, 'x'), room: 'b' }), null, 'another room')
  t.strictSame(edits.view('a').map((m) => [m.offset, m.text]), [[1, ''], [2, 'm2']])
  t.strictSame(edits.view('b'), [])
})

t.test('what it hands out are copies', async (t) => {
  const edits = new Edits()
  edits.apply(message(1))
  const got = edits.message('a', 1) as { text: string }
  got.text = 'changed'
  const [viewed] = edits.view('a')
  ;(viewed as { text: string }).text = 'changed too'
  t.equal(edits.message('a', 1)?.text, 'm1')
})

t.test('bounded: at most perRoom messages per room, the oldest forgotten first; forget and clear', async (t) => {
  const edits = new Edits(3)
  for (let i = 1; i <= 5; i++) edits.apply(message(i))
  edits.apply(message(1, 'b1', 'b'))
  t.strictSame(edits.view('a').map((m) => m.offset), [3, 4, 5])
  t.equal(edits.apply(edit(6, 2, 'x')), null, 'an edit of a forgotten message')
  edits.forget('a')
  t.strictSame(edits.view('a'), [])
  t.equal(edits.view('b').length, 1)
  edits.clear()
  t.strictSame(edits.view('b'), [])
  t.throws(() => new Edits(0), TypeError)
  t.throws(() => new Edits(1.5), TypeError)
})

function inbox (): { parts: ReturnType<typeof testParts>, box: Inbox, received: unknown[] } {
  const parts = testParts()
  const received: unknown[] = []
  parts.events.on('edit', (frame) => received.push(frame))
  parts.events.on('delete', (frame) => received.push(frame))
  parts.rooms.want('a')
  parts.rooms.dial()
  return { parts, box: new Inbox(parts, new Joins(parts), () => {}), received }
}

const send = (box: Inbox, frame: object): void => box.receive(JSON.stringify(frame))

t.test('the inbox applies live edits and deletes, emits them, settles their sends and drops replays', async (t) => {
  const { parts, box, received } = inbox()
  send(box, { type: 'joined', room: 'a', epoch: 'e', offset: 1, recovered: false, history: [message(1)], users: [], count: 1 })
  parts.sends.sent({ type: 'edit', room: 'a', of: 1, text: 'fixed', cid: 'e1' })
  send(box, { ...edit(2, 1, 'fixed'), cid: 'e1' })
  t.same(parts.sends.drain().unclear, [], 'the echo settled it')
  send(box, edit(2, 1, 'fixed'))
  t.equal(received.length, 1, 'a replayed offset is dropped')
  t.equal(parts.edits.message('a', 1)?.text, 'fixed')
  send(box, del(3, 1))
  send(box, edit(4, 1, 'x'))
  send(box, del(5, 1))
  t.same(parts.emitted, ['joined', 'count', 'edit', 'delete'], 'an edit or delete of a deleted message is no news')
  t.match(received[1], { type: 'delete', of: 1 })
  send(box, edit(6, 99, 'older than the view'))
  t.match(received[2], { type: 'edit', of: 99 }, 'a message the view does not hold: the page may')
})

t.test('a joined replay is applied before the joined event; its edits and deletes follow it as events', async (t) => {
  const { parts, box, received } = inbox()
  const order: string[] = []
  parts.events.on('joined', () => order.push(`joined: ${parts.edits.message('a', 1)?.text ?? 'none'}`))
  parts.events.on('edit', (frame) => order.push(`edit ${frame.offset}`))
  parts.events.on('delete', (frame) => order.push(`delete ${frame.offset}`))
  const { text: _, type: __, ...deleteItem } = { ...del(4, 2), text: '' }
  const history = [message(1), message(2), { ...edit(3, 1, 'fixed'), type: 'edit' }, { ...deleteItem, type: 'delete' }, { ...edit(5, 2, 'x'), type: 'edit' }]
  send(box, { type: 'joined', room: 'a', epoch: 'e', offset: 5, recovered: false, history, users: [], count: 1 })
  t.same(order, ['joined: fixed', 'edit 3', 'delete 4'], 'the edit of the deleted message is no news')
  t.strictSame(received[0], edit(3, 1, 'fixed'), 'as the live frame would be')
  t.strictSame(received[1], del(4, 2))
  t.strictSame(parts.edits.view('a').map((m) => [m.offset, m.text, m.deleted?.offset]), [[1, 'fixed', undefined], [2, '', 4]])

  send(box, { type: 'joined', room: 'a', epoch: 'e2', offset: 1, recovered: false, history: [message(1, 'new epoch')], users: [], count: 1 })
  t.strictSame(parts.edits.view('a').map((m) => m.text), ['new epoch'], 'a history without recovery replaces the view')
  send(box, { type: 'left', room: 'a' })
  t.strictSame(parts.edits.view('a'), [], 'a room left is forgotten')
})
