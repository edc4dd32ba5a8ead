import t from 'tap'
import { Occupancy } from '../../lib/chat/occupancy.js'
import { withFakeClock } from '../helpers/fake-clock.js'
import type { FakeClock } from '../helpers/fake-clock.js'

const MAX = 5
const INTERVAL = 100

function setup (): { occupancy: Occupancy, sent: Array<[string, number]> } {
  const sent: Array<[string, number]> = []
  const occupancy = new Occupancy({ eventsMax: MAX, intervalMs: INTERVAL, send: (room, count) => sent.push([room, count]) })
  return { occupancy, sent }
}

/** Runs `test` on a fresh Occupancy under a fake clock, and closes it after. */
async function withOccupancy (test: (run: { occupancy: Occupancy, sent: Array<[string, number]>, clock: FakeClock }) => void): Promise<void> {
  await withFakeClock((clock) => {
    const { occupancy, sent } = setup()
    try {
      test({ occupancy, sent, clock })
    } finally {
      occupancy.close()
    }
  })
}

t.test('up to the limit every event goes out as it is, and no count', async (t) => {
  const { occupancy, sent } = setup()
  for (let count = 1; count <= MAX; count++) t.equal(occupancy.event('r', count), true)
  t.equal(occupancy.event('r', MAX - 1), true)
  t.strictSame(sent, [])
})

t.test('above the limit: no events; the first count at once, then at most one per interval, the latest winning', async (t) => {
  await withOccupancy(({ occupancy, sent, clock }) => {
    t.equal(occupancy.event('r', MAX + 1), false)
    t.strictSame(sent, [['r', MAX + 1]], 'the first count goes out at once')
    for (let count = MAX + 2; count <= MAX + 20; count++) t.equal(occupancy.event('r', count), false)
    clock.tick(INTERVAL - 1)
    t.equal(sent.length, 1, 'nothing more within the interval')
    clock.tick(1)
    t.strictSame(sent, [['r', MAX + 1], ['r', MAX + 20]], 'then the latest')
    clock.tick(INTERVAL * 5)
    t.equal(sent.length, 2, 'nothing while the count stays the same')
    occupancy.event('r', MAX + 21)
    t.strictSame(sent.at(-1), ['r', MAX + 21], 'after a quiet interval a change goes out at once')
    occupancy.event('r', MAX + 22)
    occupancy.event('r', MAX + 21)
    clock.tick(INTERVAL)
    t.equal(sent.length, 3, 'a change undone within the interval sends nothing')
  })
})

t.test('rooms are counted apart', async (t) => {
  await withOccupancy(({ occupancy, sent, clock }) => {
    occupancy.event('a', MAX + 1)
    occupancy.event('b', MAX + 1)
    occupancy.event('a', MAX + 2)
    clock.tick(INTERVAL)
    t.strictSame(sent, [['a', MAX + 1], ['b', MAX + 1], ['a', MAX + 2]])
  })
})

t.test('back at the limit: the current count at once, then events again; above it again, still one count per interval', async (t) => {
  await withOccupancy(({ occupancy, sent, clock }) => {
    occupancy.event('r', MAX + 2)
    occupancy.event('r', MAX + 1)
    t.equal(occupancy.event('r', MAX), true, 'the event that crosses back goes out')
    t.strictSame(sent, [['r', MAX + 2], ['r', MAX]], 'after the count clients did not have')
    clock.tick(INTERVAL * 3)
    t.equal(sent.length, 2, 'the pending count was called off')
    t.equal(occupancy.event('r', MAX + 1), false)
    t.strictSame(sent.at(-1), ['r', MAX + 1])
    t.equal(occupancy.event('r', MAX), true)
    t.equal(sent.length, 4, 'crossing back sends the count')
    t.equal(occupancy.event('r', MAX + 1), false)
    t.equal(sent.length, 4, 'a room swinging around the limit is still held to the interval')
    clock.tick(INTERVAL)
    t.strictSame(sent.at(-1), ['r', MAX + 1])
    t.equal(occupancy.event('r', MAX), true)
    t.equal(occupancy.event('r', MAX + 1), false)
    t.equal(occupancy.event('r', MAX), true)
    t.equal(sent.length, 6, 'one crossing back that changed what clients had')
    t.equal(occupancy.event('r', MAX - 1), true)
    t.equal(occupancy.event('r', MAX - 2), true)
    t.equal(sent.length, 6, 'below the limit the events carry the count: no more counts')
  })
})

t.test('forget and close stop the timers: nothing is sent after them', async (t) => {
  await withOccupancy(({ occupancy, sent, clock }) => {
    occupancy.event('a', MAX + 1)
    occupancy.event('a', MAX + 2)
    occupancy.event('b', MAX + 1)
    occupancy.event('b', MAX + 2)
    occupancy.forget('a')
    occupancy.forget('nowhere')
    clock.tick(INTERVAL)
    t.strictSame(sent, [['a', MAX + 1], ['b', MAX + 1], ['b', MAX + 2]], 'a forgotten room sends nothing')
    occupancy.event('b', MAX + 3)
    occupancy.close()
    clock.tick(INTERVAL * 2)
    t.equal(sent.length, 3, 'nor does any after close')
    occupancy.event('a', MAX + 1)
    t.strictSame(sent.at(-1), ['a', MAX + 1], 'a room forgotten starts afresh')
  })
})
