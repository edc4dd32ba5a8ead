// Idle: what an open connection that does nothing costs in server memory.
import { fmtCount, fmtKiB, fmtMiB, fmtPct, problems, sideBySide } from '../lib/format.mjs'
import { log } from '../lib/log.mjs'
import { withRig } from '../lib/rig.mjs'
import { attempt } from '../lib/rounds.mjs'

const IDLE_ROOM = 100 // fastify-chat idle sockets per room (see the note under the idle table)

/** results[server id] = that server's memory figures. */
export async function run (bench, servers) {
  const results = {}
  for (const server of servers) {
    log(`idle ${bench.cfg.idle}: ${server.label}`)
    const roomSize = server.kind === 'chat' ? IDLE_ROOM : 0
    results[server.id] = await attempt(bench, `idle ${server.label}`, () => idleMemory(bench, server, { total: bench.cfg.idle, roomSize }))
  }
  return results
}

/**
 * Memory of `total` idle connections, opened in two halves; fastify-chat
 * sockets go to rooms of `roomSize`, or all to `room`.
 */
export async function idleMemory (bench, server, { total, roomSize = 0, room = null }) {
  return await withRig(bench, server, async (rig) => {
    const half = Math.floor(total / 2)
    await rig.quiet(10_000)
    const heapBefore = await rig.gc()
    const before = rig.rssKiB()
    const first = await rig.connect({ subs: half, sample: 0, roomSize, room })
    await rig.quiet(120_000)
    const heapMid = await rig.gc()
    const mid = rig.rssKiB()
    const second = await rig.connect({ subs: total - half, sample: 0, roomSize, room })
    const settled = await rig.quiet(120_000)
    const heapAfter = await rig.gc()
    const after = rig.rssKiB()
    const open = first.ready + second.ready
    const r = {
      wanted: total,
      open,
      failures: { ...first.failures, ...second.failures },
      connectSeconds: first.seconds + second.seconds,
      settled,
      loadgenCpu: (first.loadgenCpu * first.seconds + second.loadgenCpu * second.seconds) / (first.seconds + second.seconds),
      serverCpu: (first.serverCpu * first.seconds + second.serverCpu * second.seconds) / (first.seconds + second.seconds),
      beforeKiB: before,
      midKiB: mid,
      afterKiB: after,
      perConnKiB: open > 0 ? (after - before) / open : NaN,
      // V8 heap and external memory per connection: what the objects held for
      // each socket weigh, steady from run to run where RSS is not.
      heapPerConnKiB: open > 0 ? (heapAfter.heapKiB - heapBefore.heapKiB) / open : NaN,
      heapMarginalKiB: second.ready > 0 ? (heapAfter.heapKiB - heapMid.heapKiB) / second.ready : NaN,
      externalPerConnKiB: open > 0 ? (heapAfter.externalKiB - heapBefore.externalKiB) / open : NaN,
      // The second half's cost alone: what one more connection adds, without
      // the one-time growth (young generation, compiled code) the first
      // connections bring about whatever they hold.
      marginalKiB: second.ready > 0 ? (after - mid) / second.ready : NaN
    }
    log(`  ${server.label}: ${open} open in ${r.connectSeconds.toFixed(1)} s, ${r.perConnKiB.toFixed(1)} KiB each, ${r.marginalKiB.toFixed(1)} KiB each of the second half; heap ${r.heapPerConnKiB.toFixed(2)} KiB (${r.heapMarginalKiB.toFixed(2)} of the second half), external ${r.externalPerConnKiB.toFixed(2)} KiB`)
    return r
  })
}

/**
 * The rows of a table of {@link idleMemory} figures for `total` connections;
 * `heapRows` follow the V8 heap per connection.
 */
export function memoryRows (total, heapRows) {
  return [
    ['Connections open', (r) => r.open, fmtCount, false],
    ['Server RSS before', (r) => r.beforeKiB, fmtMiB],
    ['Server RSS with the connections open', (r) => r.afterKiB, fmtMiB],
    ['Memory per connection', (r) => r.perConnKiB, fmtKiB],
    [`Memory per connection of the second ${fmtCount(total - Math.floor(total / 2))}`, (r) => r.marginalKiB, fmtKiB],
    ['V8 heap per connection', (r) => r.heapPerConnKiB, fmtKiB],
    ...heapRows,
    ['Time to open them all', (r) => r.connectSeconds, (v) => `${v.toFixed(1)} s`],
    ['Server CPU while connecting (% of one core)', (r) => r.serverCpu, fmtPct],
    ['Load generator CPU while connecting (% of one core)', (r) => r.loadgenCpu, fmtPct, false]
  ]
}

export function section (bench, servers, results) {
  const total = bench.cfg.idle
  return [
    `## Idle: memory per open connection at ${fmtCount(total)} connections`,
    '',
    sideBySide('', results, servers, memoryRows(total, [
      ['V8 external memory per connection', (r) => r.externalPerConnKiB, fmtKiB]
    ])),
    '',
    'RSS (VmRSS) after a forced GC in the server, before any connection and once all are open and the server ' +
      'is idle again; the difference divided by the connections. The connections open in two halves, with the same ' +
      'measure after the first: the second half\'s growth per connection is what one more idle connection costs, ' +
      'without the one-time growth of the heap\'s young generation and compiled code that the first ones bring. The naive loop and Socket.IO hold every socket in ' +
      `one broadcast set; fastify-chat sockets join rooms of ${IDLE_ROOM} (\`?room=\`), so they hold presence too. ` +
      'Not one room: each join sends a presence event to every member and a `joined` frame listing every user, so ' +
      'filling one room costs O(n²) (see the Connect column of the ramp details).' + problems(results, servers)
  ]
}
