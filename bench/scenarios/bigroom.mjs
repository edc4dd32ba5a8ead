// Idle in one big room: the idle scenario's measure with every fastify-chat
// socket in the same room, so each one also weighs what a member of a room
// of that size holds (its presence entry, its share of the room's member set).
import { fmtCount, fmtKiB, problems, sideBySide } from '../lib/format.mjs'
import { log } from '../lib/log.mjs'
import { attempt } from '../lib/rounds.mjs'
import { idleMemory, memoryRows } from './idle.mjs'

const ROOM = 'big'
// An idle connection's RSS in the 2026-11-27 run, in rooms of 100 (bench/README.md),
// and its V8 heap in the 2026-11-30 run, the steadier figure of the two.
const TARGET_KIB = 8.3
const HEAP_KIB = 4.70

/** results[server id] = that server's memory figures. */
export async function run (bench, servers) {
  const results = {}
  const total = bench.cfg.bigRoom
  for (const server of servers) {
    log(`idle in one room of ${fmtCount(total)}: ${server.label}`)
    results[server.id] = await attempt(bench, `bigroom ${server.label}`, async () => {
      const r = await idleMemory(bench, server, { total, room: server.kind === 'chat' ? ROOM : null })
      r.reasons = r.open === total ? [] : [`${r.open} of ${total} open`]
      return r
    })
  }
  return results
}

export function section (bench, servers, results) {
  const total = bench.cfg.bigRoom
  return [
    `## Idle in one room: memory per connection with ${fmtCount(total)} connections in the same room`,
    '',
    sideBySide('', results, servers, memoryRows(total, [
      ['V8 heap per connection of the second half', (r) => r.heapMarginalKiB, fmtKiB]
    ])),
    '',
    'Measured as in the idle scenario (RSS and V8 heap after a forced GC, before any connection and with all open, ' +
      'in two halves), but every fastify-chat socket joins the one room `' + ROOM + '` (`?room=`), so the figures ' +
      'include what a member of a room this size holds. The target is no more than the ' +
      `${TARGET_KIB} KiB of RSS per connection that an idle connection cost in rooms of 100 (2026-11-27). RSS moves ` +
      'by several KiB per connection from run to run with V8\'s heap sizing; the V8 heap per connection, which does not, ' +
      `was ${HEAP_KIB.toFixed(2)} KiB in rooms of 100 on 2026-11-30.` +
      problems(results, servers)
  ]
}
