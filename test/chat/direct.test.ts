import t from 'tap'
import { directRoom, isDirectRoom } from '../../lib/chat/direct.js'
import { ROOM_PATTERN } from '../../lib/protocol/wire.js'

t.test('the same room whoever opens it', async (t) => {
  t.equal(directRoom('alice', 'bob'), directRoom('bob', 'alice'))
  t.not(directRoom('alice', 'bob'), directRoom('alice', 'carol'))
})

t.test('a valid room name, whatever the ids, starting with dm-', async (t) => {
  const ids = ['a', 'x'.repeat(128), 'ünï cødé 🎉', 'with|bar', 'with"quote', '{}', ' ']
  for (const a of ids) {
    for (const b of ids) {
      if (a === b) continue
      const room = directRoom(a, b)
      t.ok(ROOM_PATTERN.test(room), `${a} + ${b}`)
      t.ok(isDirectRoom(room))
      t.ok(room.startsWith('dm-'))
    }
  }
})

t.test('ids that join into the same string are still different pairs', async (t) => {
  t.not(directRoom('a|b', 'c'), directRoom('a', 'b|c'))
  t.not(directRoom('a","b', 'c'), directRoom('a', 'b","c'))
})

t.test('other rooms are not direct rooms', async (t) => {
  t.notOk(isDirectRoom('lobby'))
  t.notOk(isDirectRoom('dm'))
  t.notOk(isDirectRoom('xdm-1'))
  t.ok(isDirectRoom('dm-anything'), 'the prefix is reserved: such a room is only ever joined by its recorded pair')
})
