import t from 'tap'
import { checkPage, checkRoom, checkToken, checkUserId, MAX_CURSOR_LENGTH, MAX_MEMBERS_PAGE, MAX_TOKEN_LENGTH, MAX_USER_ID_LENGTH, ROOM_PATTERN } from '../../lib/client/checks.js'
import * as wire from '../../lib/protocol/wire.js'

t.test('the limits are the wire protocol\'s', async (t) => {
  t.equal(ROOM_PATTERN.source, wire.ROOM_PATTERN.source)
  t.equal(ROOM_PATTERN.flags, wire.ROOM_PATTERN.flags)
  t.equal(MAX_USER_ID_LENGTH, wire.MAX_USER_ID_LENGTH)
  t.equal(MAX_TOKEN_LENGTH, wire.MAX_TOKEN_LENGTH)
  t.equal(MAX_MEMBERS_PAGE, wire.MAX_MEMBERS_PAGE)
  t.equal(MAX_CURSOR_LENGTH, wire.MAX_CURSOR_LENGTH)
})

t.test('room names', async (t) => {
  t.equal(checkRoom('lobby_2-b'), 'lobby_2-b')
  for (const bad of ['', 'a b', 'x'.repeat(65), 'é', 7 as unknown as string]) {
    t.throws(() => checkRoom(bad), { name: 'TypeError', message: /invalid room name/ }, String(bad))
  }
})

t.test('user ids', async (t) => {
  t.equal(checkUserId('u'.repeat(MAX_USER_ID_LENGTH)), 'u'.repeat(MAX_USER_ID_LENGTH))
  for (const bad of ['', 'u'.repeat(MAX_USER_ID_LENGTH + 1), null as unknown as string]) {
    t.throws(() => checkUserId(bad), { name: 'TypeError', message: /invalid user id/ })
  }
})

t.test('tokens', async (t) => {
  t.equal(checkToken('tok'), 'tok')
  for (const bad of ['', 't'.repeat(MAX_TOKEN_LENGTH + 1), 1 as unknown as string]) {
    t.throws(() => checkToken(bad), { name: 'TypeError', message: /a token must be a string/ })
  }
})

t.test('members pages', async (t) => {
  t.same(checkPage({}), { after: undefined, limit: undefined })
  t.same(checkPage({ after: 'c', limit: MAX_MEMBERS_PAGE }), { after: 'c', limit: MAX_MEMBERS_PAGE })
  t.throws(() => checkPage({ after: 'c'.repeat(MAX_CURSOR_LENGTH + 1) }), { message: /after must be a cursor/ })
  t.throws(() => checkPage({ after: 5 as unknown as string }), { message: /after must be a cursor/ })
  for (const limit of [0, MAX_MEMBERS_PAGE + 1, 1.5, Number.NaN]) {
    t.throws(() => checkPage({ limit }), { message: /limit must be an integer/ }, String(limit))
  }
})
