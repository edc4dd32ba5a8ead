import t from 'tap'
import { Joins } from '../../lib/client/joins.js'
import { testParts } from '../helpers/client-parts.js'
import { withFakeClock } from '../helpers/fake-clock.js'

const joined = (room: string, offset: number) => ({ type: 'joined' as const, room, epoch: 'e1', offset, recovered: true, history: [], users: [], count: 1 })

t.test('rejoin asks for every wanted room but the URL\'s where it stopped, and for every direct room and open ask', async (t) => {
  const parts = testParts()
  const joins = new Joins(parts)
  parts.rooms.want('a')
  parts.rooms.want('b')
  parts.rooms.dial()
  parts.rooms.onJoined(joined('a', 7), false)
  parts.directs.joined('dm-x', { id: 'u2', name: 'bo' })
  parts.directs.ask('u3', 'c3')
  parts.rooms.onJoined(joined('b', 3), false)
  parts.rooms.dropped()
  t.same(parts.rooms.dial(), { room: 'a', since: { epoch: 'e1', offset: 7 } }, 'the first room rides in the URL')
  joins.rejoin()
  t.same(parts.written, [
    { type: 'join', room: 'b', since: { epoch: 'e1', offset: 3 } },
    { type: 'join', with: 'u2' },
    { type: 'join', with: 'u3', cid: 'c3' }
  ])
})

t.test('retry asks again after the backoff, on the same socket, only while still wanted and not joined', async (t) => {
  t.intercept(Math, 'random', { value: () => 0.5 })
  await withFakeClock((clock) => {
    const parts = testParts()
    const joins = new Joins(parts)
    parts.rooms.want('a')
    parts.rooms.want('b')
    parts.rooms.want('c')
    joins.retry('a', undefined)
    joins.retry('b', undefined)
    joins.retry('c', undefined)
    parts.rooms.unwant('b')
    clock.tick(49)
    t.same(parts.written, [], 'not before the backoff')
    clock.tick(1)
    t.same(parts.written, [{ type: 'join', room: 'a' }, { type: 'join', room: 'c' }], 'b is no longer wanted')

    joins.retry('a', undefined)
    parts.state.socket = {}
    clock.tick(1000)
    t.equal(parts.written.length, 2, 'a new socket asks for every room itself')

    joins.retry('c', undefined)
    parts.state.open = false
    clock.tick(1000)
    t.equal(parts.written.length, 2, 'nothing is written while not open')

    joins.retry('dm-u9', 'u9')
    parts.state.open = true
    clock.tick(1000)
    t.same(parts.written.at(-1), { type: 'join', with: 'u9' }, 'a direct room is asked for by its user')
  })
})
