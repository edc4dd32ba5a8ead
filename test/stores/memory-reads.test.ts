import t from 'tap'
import { MemoryReads } from '../../lib/stores/memory-reads.js'

t.test('the least recently moved user and room are forgotten past the limits', async (t) => {
  const reads = new MemoryReads({ maxUsers: 2, maxRoomsPerUser: 2 })
  t.equal(reads.mark('a', 'u1', 1, 5), 1)
  t.equal(reads.mark('b', 'u1', 1, 5), 1)
  t.equal(reads.mark('c', 'u1', 1, 5), 1)
  t.strictSame(reads.positions('u1'), { b: 1, c: 1 }, 'room a, moved least recently, is forgotten')
  t.equal(reads.mark('a', 'u2', 2, 5), 2)
  t.equal(reads.mark('b', 'u1', 3, 5), 3, 'u1 moved last')
  t.equal(reads.mark('a', 'u3', 1, 5), 1)
  t.strictSame(reads.positions('u2'), {}, 'u2 is forgotten')
  t.strictSame(reads.positions('u1'), { c: 1, b: 3 })
  t.equal(reads.mark('b', 'u1', 2, 5), null, 'lower')
  t.equal(reads.mark('b', 'u1', 1, 0), 1, 'the kept one is beyond the room\'s latest: its history was lost, the new one replaces it')
  reads.clear()
  t.equal(reads.position('b', 'u1'), 0)
})
