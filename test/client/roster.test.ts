import t from 'tap'
import { Emitter } from '../../lib/client/emitter.js'
import { membersError, membersRequest, Roster } from '../../lib/client/roster.js'
import type { ChatEvents, MembersPage } from '../../lib/client/types.js'
import type { JoinedFrame, MembersFrame, MembersRequest, User } from '../../lib/protocol/wire.js'
import { withFakeClock } from '../helpers/fake-clock.js'

const user = (n: number): User => ({ id: `u${n}`, name: `user${n}` })

function joined (room: string, users: User[], count: number, next?: string): JoinedFrame {
  const frame: JoinedFrame = { type: 'joined', room, epoch: 'e', offset: 0, recovered: false, history: [], users, count }
  if (next !== undefined) frame.next = next
  return frame
}

/** A roster and the count and members events it emits. */
function setup (): { roster: Roster, counts: Array<ChatEvents['count']>, pages: MembersFrame[] } {
  const events = new Emitter<ChatEvents>()
  const counts: Array<ChatEvents['count']> = []
  const pages: MembersFrame[] = []
  events.on('count', (c) => counts.push(c))
  events.on('members', (p) => pages.push(p))
  return { roster: new Roster(events), counts, pages }
}

t.test('a joined starts the list; presence, members and counts follow', async (t) => {
  const { roster, counts, pages } = setup()
  t.equal(roster.presence('lobby'), undefined, 'not in it')
  t.equal(roster.start(joined('lobby', [user(1)], 1)), undefined, 'no count before')
  t.same(roster.presence('lobby'), { count: 1, users: [user(1)], more: false })

  roster.onPresence({ type: 'presence', room: 'lobby', event: 'join', user: user(2), count: 2 })
  roster.onPresence({ type: 'presence', room: 'lobby', event: 'rename', user: { id: 'u1', name: 'one' }, count: 2 })
  t.same(roster.presence('lobby'), { count: 2, users: [{ id: 'u1', name: 'one' }, user(2)], more: false })
  roster.onPresence({ type: 'presence', room: 'lobby', event: 'leave', user: user(2), count: 1 })
  roster.setCount('lobby', 1)
  roster.setCount('elsewhere', 9)
  roster.onPresence({ type: 'presence', room: 'elsewhere', event: 'join', user: user(9), count: 9 })
  t.same(counts, [{ room: 'lobby', count: 2 }, { room: 'lobby', count: 1 }], 'only changes, only of rooms it is in')

  roster.setCount('lobby', 5)
  t.equal(roster.presence('lobby')?.more, true, 'fewer known than there are')
  const page: MembersFrame = { type: 'members', room: 'lobby', users: [user(3), user(4)], count: 5 }
  roster.onMembers(page)
  roster.onMembers({ type: 'members', room: 'elsewhere', users: [user(8)], count: 1 })
  t.same(roster.presence('lobby')?.users.map((u) => u.id), ['u1', 'u3', 'u4'])
  t.same(pages.map((p) => p.room), ['lobby', 'elsewhere'], 'every page is an event')
  t.equal(roster.start(joined('lobby', [user(1)], 7)), 5, 'a rejoin returns the count known before')
  t.same(roster.presence('lobby')?.users, [user(1)], 'and starts the list over')
})

t.test('rename, delete and clear', async (t) => {
  const { roster } = setup()
  roster.start(joined('a', [user(1), user(2)], 2))
  roster.start(joined('b', [user(2)], 1))
  roster.start(joined('c', [user(3)], 1))
  roster.rename('u2', 'two')
  t.same(roster.presence('a')?.users, [user(1), { id: 'u2', name: 'two' }])
  t.same(roster.presence('b')?.users, [{ id: 'u2', name: 'two' }])
  t.same(roster.presence('c')?.users, [user(3)], 'not where it is not')
  roster.delete('a')
  t.equal(roster.presence('a'), undefined)
  roster.clear()
  t.equal(roster.presence('b'), undefined)
})

t.test('a request is answered by the members frame or the error frame of its cid', async (t) => {
  const { roster } = setup()
  roster.start(joined('lobby', [], 3))
  const written: MembersRequest[] = []
  const page = roster.request({ type: 'members', room: 'lobby', cid: 'c1', limit: 2 }, (f) => written.push(f))
  t.same(written, [{ type: 'members', room: 'lobby', cid: 'c1', limit: 2 }])
  roster.onMembers({ type: 'members', room: 'lobby', users: [user(1)], count: 3, cid: 'c1', next: 'n' })
  t.match(await page, { cid: 'c1', next: 'n' })

  const refused = roster.request({ type: 'members', room: 'lobby', cid: 'c2' }, () => {})
  t.equal(roster.onError('other', 'forbidden', 'no'), false, 'an error of another cid is not its')
  t.equal(roster.onError(undefined, 'forbidden', 'no'), false)
  t.equal(roster.onError('c2', 'not_in_room', 'not in room'), true)
  await t.rejects(refused, { code: 'not_in_room', message: 'not in room' })

  const dropped = roster.request({ type: 'members', room: 'lobby', cid: 'c3' }, () => {})
  roster.failPages()
  await t.rejects(dropped, { code: 'closed' })
})

t.test('a request with no answer times out after 10 s', async (t) => {
  const { roster } = setup()
  await withFakeClock(async (clock) => {
    const page = roster.request({ type: 'members', room: 'lobby', cid: 'c1' }, () => {})
    const outcome = page.then(() => 'answered', (err: { code: string }) => err.code)
    clock.tick(9_999)
    t.equal(roster.onError('c1', 'x', 'y') ? 'still waiting' : 'gone', 'still waiting')
    const again = roster.request({ type: 'members', room: 'lobby', cid: 'c2' }, () => {})
    const late = again.then(() => 'answered', (err: { code: string }) => err.code)
    clock.tick(10_000)
    t.equal(await late, 'timeout')
    t.equal(await outcome, 'x')
  })
})

t.test('loadMore pages on from the last next, and from past the known users when starting over', async (t) => {
  const { roster } = setup()
  await t.rejects(roster.loadMore('lobby', 2, async () => { throw new Error('not called') }), { code: 'not_in_room' })
  roster.start(joined('lobby', [user(1), user(2)], 6, 'cur-2'))
  await t.rejects(roster.loadMore('lobby', 0, async () => { throw new Error('not called') }), { message: /limit must be/ })

  const asked: MembersPage[] = []
  const serve = (users: User[], next?: string) => async (page: MembersPage): Promise<MembersFrame> => {
    asked.push(page)
    const frame: MembersFrame = { type: 'members', room: 'lobby', users, count: 6 }
    if (next !== undefined) frame.next = next
    roster.onMembers(frame)
    return frame
  }
  t.equal(await roster.loadMore('lobby', 2, serve([user(3), user(4)], 'cur-4')), true)
  t.equal(await roster.loadMore('lobby', undefined, serve([user(5), user(6)])), false, 'the last page')
  t.same(asked, [{ after: 'cur-2', limit: 2 }, { after: 'cur-4', limit: undefined }])
  t.same(roster.presence('lobby'), { count: 6, users: [1, 2, 3, 4, 5, 6].map(user), more: false })

  // Six known, none past the end: starting over asks past the six known, plus `limit`.
  roster.setCount('lobby', 8)
  t.equal(await roster.loadMore('lobby', 2, serve([user(7), user(8)])), false)
  t.same(asked.at(-1), { after: undefined, limit: 8 })
  roster.setCount('lobby', 9)
  await roster.loadMore('lobby', undefined, serve([user(9)]))
  t.same(asked.at(-1), { after: undefined, limit: 16 }, 'without a limit: twice the known')
  for (let n = 10; n < 1010; n++) roster.onPresence({ type: 'presence', room: 'lobby', event: 'join', user: user(n), count: n })
  await roster.loadMore('lobby', 10, serve([]))
  t.same(asked.at(-1), { after: undefined, limit: 1000 }, 'at most a whole page')
})

t.test('a rejoin while a page is on its way starts paging over', async (t) => {
  const { roster } = setup()
  roster.start(joined('lobby', [user(1)], 3, 'cur-1'))
  const more = await roster.loadMore('lobby', 1, async () => {
    roster.start(joined('lobby', [user(1)], 3, 'fresh'))
    return { type: 'members', room: 'lobby', users: [user(2)], count: 3, next: 'cur-2' }
  })
  t.equal(more, true)
  const asked: MembersPage[] = []
  await roster.loadMore('lobby', 1, async (page) => {
    asked.push(page)
    roster.delete('lobby')
    return { type: 'members', room: 'lobby', users: [], count: 3 }
  })
  t.same(asked, [{ after: 'fresh', limit: 1 }], 'the new list\'s cursor, not the stale page\'s')
  t.equal(await roster.loadMore('lobby', 1, async () => { throw new Error('not called') }).catch((err: { code: string }) => err.code), 'not_in_room')
  t.match(membersError('x', 'y'), { code: 'x', message: 'y' })
})

t.test('a members request is checked and gets a fresh cid', async (t) => {
  const first = membersRequest('lobby', {})
  t.match(first, { type: 'members', room: 'lobby', cid: /^[0-9a-f]{24}$/ })
  t.notOk('after' in first || 'limit' in first, 'no keys for what was not asked')
  t.match(membersRequest('lobby', { after: 'c', limit: 3 }), { after: 'c', limit: 3 })
  t.not(membersRequest('lobby', {}).cid, first.cid)
  t.throws(() => membersRequest('bad room', {}), { message: /invalid room name/ })
  t.throws(() => membersRequest('lobby', { limit: 0 }), { message: /limit must be/ })
})
