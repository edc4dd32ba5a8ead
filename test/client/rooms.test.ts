import t from 'tap'
import { Rooms } from '../../lib/client/rooms.js'
import type { ChatMessage, JoinedFrame, MessageFrame } from '../../lib/protocol/wire.js'

const alice = { id: 'u-a', name: 'alice' }

function message (room: string, offset: number): ChatMessage {
  return { room, offset, ts: 0, from: alice, text: `m${offset}` }
}

function joined (room: string, fields: Partial<JoinedFrame> = {}): JoinedFrame {
  return { type: 'joined', room, epoch: 'e1', offset: 0, recovered: false, history: [], users: [], count: 1, ...fields }
}

const live = (room: string, offset: number): MessageFrame => ({ ...message(room, offset), type: 'message' })

t.test('without a URL room, the first socket leaves the room to the server; after joined, the first rides in the URL', async (t) => {
  const rooms = new Rooms()
  rooms.want('news')
  t.equal(rooms.dial(), undefined, 'the server\'s default room is joined too')
  t.same(rooms.rejoins(), ['news'])
  rooms.onJoined(joined('lobby'), false)
  rooms.onJoined(joined('news', { offset: 3 }), false)
  t.same(rooms.dial(), { room: 'news', since: { epoch: 'e1', offset: 3 } }, 'the first wanted, the default room now by name')
  t.same(rooms.rejoins(), ['lobby'], 'the URL\'s room is not joined twice')
})

t.test('the URL room and its since ride in every socket\'s URL', async (t) => {
  const rooms = new Rooms()
  rooms.first('lobby', 'ep:och:12')
  rooms.want('news')
  t.same(rooms.dial(), { room: 'lobby', since: { epoch: 'ep:och', offset: 12 } })
  const plain = new Rooms()
  plain.first('lobby', 'garbage')
  t.same(plain.dial(), { room: 'lobby', since: undefined }, 'a since without epoch:offset is ignored')
  const bad = new Rooms()
  bad.first('lobby', 'e:x')
  t.same(bad.dial()?.since, { epoch: 'e', offset: 0 })
})

t.test('a joined that was not asked for, in a room already joined, is a reset', async (t) => {
  const rooms = new Rooms()
  rooms.first('lobby', '')
  rooms.dial()
  t.same(rooms.onJoined(joined('lobby', { offset: 5 }), false), { reset: false, history: [] }, 'the URL join was asked')
  t.ok(rooms.isJoined('lobby'))
  t.same(rooms.joined, ['lobby'])
  t.equal(rooms.onJoined(joined('lobby', { epoch: 'e2' }), false).reset, true, 'nobody asked')
  t.same(rooms.asking('lobby'), { epoch: 'e2', offset: 0 }, 'offsets start over from the reset')
  t.equal(rooms.onJoined(joined('lobby', { epoch: 'e2' }), false).reset, false, 'asked this time')
})

t.test('counts joins asked and answered', async (t) => {
  const rooms = new Rooms()
  rooms.dial()
  t.equal(rooms.asking('a'), undefined, 'no cursor yet')
  rooms.asking('a')
  t.equal(rooms.answered('a'), 2)
  t.equal(rooms.answered('a'), 1)
  t.equal(rooms.answered('a'), 0)
  rooms.asking('a')
  t.equal(rooms.dial(), undefined)
  t.equal(rooms.answered('a'), 0, 'a fresh socket forgets what was asked on the last')
})

t.test('a recovered joined drops what was already seen and keeps the furthest offset', async (t) => {
  const rooms = new Rooms()
  rooms.first('lobby', 'e1:3')
  rooms.dial()
  const { history } = rooms.onJoined(joined('lobby', { recovered: true, offset: 5, history: [3, 4, 5].map((n) => message('lobby', n)) }), false)
  t.same(history.map((m) => m.offset), [4, 5])
  t.equal(rooms.onMessage(live('lobby', 5)), false, 'seen in the replay')
  t.equal(rooms.onMessage(live('lobby', 6)), true)
  t.equal(rooms.onMessage(live('lobby', 6)), false, 'twice')
  t.equal(rooms.onMessage(live('elsewhere', 1)), true, 'no cursor: nothing to drop')

  rooms.asking('lobby')
  const again = rooms.onJoined(joined('lobby', { recovered: true, offset: 4, history: [] }), false)
  t.same(again.history, [])
  t.same(rooms.asking('lobby'), { epoch: 'e1', offset: 6 }, 'a replay behind the live messages does not move the cursor back')
  rooms.answered('lobby')
  const other = rooms.onJoined(joined('lobby', { epoch: 'e9', recovered: true, offset: 2, history: [message('lobby', 1)] }), false)
  t.same(other.history.map((m) => m.offset), [1], 'another epoch: all of it')
})

t.test('direct rooms are not wanted by name; left and refused rooms are not rejoined', async (t) => {
  const rooms = new Rooms()
  rooms.want('news')
  rooms.want('dm-x')
  rooms.dial()
  rooms.onJoined(joined('dm-x'), true)
  t.same(rooms.rejoins(), ['news'])
  t.notOk(rooms.wants('dm-x'))
  t.ok(rooms.isJoined('dm-x'))

  rooms.onJoined(joined('news'), false)
  rooms.left('news')
  t.notOk(rooms.isJoined('news'))
  t.notOk(rooms.wants('news'))

  rooms.want('sport')
  rooms.asking('sport')
  rooms.refused('sport')
  t.notOk(rooms.wants('sport'))
  t.equal(rooms.answered('sport'), 0, 'its pending join is forgotten')

  rooms.want('a')
  t.equal(rooms.unwant('a'), true)
  t.equal(rooms.unwant('a'), false)
  rooms.dropped()
  t.same(rooms.joined, [])
})
