// Filling one room: every client connects with `?room=`, and counts as in
// once its `joined` arrives (the naive loop has no rooms: its client is in
// when the upgrade completes), 50 connecting at a time. What grows with the
// room shows up as time per join that rises from one size to the next.
import { fmtCount, fmtKiB, fmtMs, fmtPct, fmtRatio, problems, sideBySide, table } from '../lib/format.mjs'
import { log } from '../lib/log.mjs'
import { withRig } from '../lib/rig.mjs'
import { attempt } from '../lib/rounds.mjs'

const AT_ONCE = 50
const ROOM = 'fill'
// The targets of issue 16: CPU against the naive loop accepting the same
// connections, and time per join at the larger size against the smaller.
const CPU_TARGET = 2.5
const GROWTH_TARGET = 1.3

/** results[size][server id] = that fill's figures. */
export async function run (bench, servers) {
  const results = {}
  for (const size of bench.cfg.fillSizes) {
    results[size] = {}
    for (const server of servers) {
      log(`fill a room of ${fmtCount(size)}: ${server.label}`)
      results[size][server.id] = await attempt(bench, `fill ${size} ${server.label}`, () => fill(bench, server, size))
    }
  }
  return results
}

async function fill (bench, server, size) {
  return await withRig(bench, server, async (rig) => {
    await rig.quiet(10_000)
    await rig.all('reset')
    const before = rig.snap()
    const conn = await rig.connect({ subs: size, sample: 0, room: ROOM, concurrency: AT_ONCE })
    // Presence and occupancy go on after the last `joined`: the server's CPU
    // and the bytes count until it is idle again.
    const settled = await rig.quiet(60_000)
    const usage = rig.usage(before, rig.snap())
    const stats = await rig.stats()
    const r = {
      size,
      ready: conn.ready,
      failures: conn.failures,
      seconds: conn.seconds,
      msPerJoin: conn.seconds * 1000 / size,
      serverCpuSec: usage.serverCpuSec,
      cpuMsPerJoin: usage.serverCpuSec * 1000 / size,
      bytes: stats.bytes,
      bytesPerClient: stats.bytes / size,
      errors: stats.errors,
      peakRssKiB: rig.peakRssKiB(),
      loadgenCpu: conn.loadgenCpu,
      foreignCpu: usage.foreignCpu,
      settled,
      reasons: []
    }
    if (conn.ready !== size) r.reasons.push(`${conn.ready} of ${size} in the room`)
    if (stats.errors > 0) r.reasons.push(`${stats.errors} error frames`)
    if (!settled) r.reasons.push('the server was still busy 60 s after the last join')
    log(`  ${server.label}: ${conn.ready}/${size} in ${conn.seconds.toFixed(1)} s (${fmtMs(r.msPerJoin)} per join), ` +
      `server CPU ${r.serverCpuSec.toFixed(2)} s, clients received ${fmtMiBytes(r.bytes)}`)
    return r
  })
}

function fmtMiBytes (bytes) {
  if (!Number.isFinite(bytes)) return '–'
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`
}

export function section (bench, servers, results) {
  const sizes = bench.cfg.fillSizes
  const parts = [`## Filling one room: ${sizes.map(fmtCount).join(' and ')} clients, ${AT_ONCE} joining at a time`, '']
  for (const size of sizes) {
    parts.push(`**${fmtCount(size)} clients**`, '', sideBySide('', results[size], servers, [
      ['In the room', (r) => r.ready, fmtCount, false],
      ['Time to fill', (r) => r.seconds, (v) => `${v.toFixed(1)} s`],
      ['Time per join', (r) => r.msPerJoin, fmtMs],
      ['Server CPU (user + sys)', (r) => r.serverCpuSec, (v) => `${v.toFixed(2)} s`],
      ['Server CPU per join', (r) => r.cpuMsPerJoin, fmtMs],
      ['Bytes the clients received', (r) => r.bytes, fmtMiBytes],
      ['… per client', (r) => r.bytesPerClient / 1024, fmtKiB],
      ['Server peak RSS', (r) => r.peakRssKiB / 1024, (v) => `${v.toFixed(0)} MiB`],
      ['Load generator CPU while filling (% of one core)', (r) => r.loadgenCpu, fmtPct, false],
      ['Other processes (% of one core)', (r) => r.foreignCpu, fmtPct, false]
    ]), '')
  }
  const chat = servers.filter((s) => s.kind === 'chat')
  if (sizes.length >= 2 && chat.length > 0) {
    const [small, large] = [sizes[0], sizes[sizes.length - 1]]
    const rows = chat.map((s) => {
      const cpu = sizes.map((n) => fmtRatio(results[n][s.id]?.serverCpuSec, results[n].naive?.serverCpuSec))
      const growth = results[large][s.id]?.msPerJoin / results[small][s.id]?.msPerJoin
      return [s.label, ...cpu, Number.isFinite(growth) ? `${growth.toFixed(2)}×` : '–']
    })
    parts.push(table(['', ...sizes.map((n) => `Server CPU ÷ naive, ${fmtCount(n)}`), `Time per join, ${fmtCount(large)} ÷ ${fmtCount(small)}`], rows), '')
    parts.push(`Targets: server CPU at most ${CPU_TARGET}× the naive loop's for the same connections, and time per join ` +
      `within ${GROWTH_TARGET}× from ${fmtCount(small)} to ${fmtCount(large)} (linear growth).`, '')
  }
  parts.push('Each client opens a raw socket with `?room=' + ROOM + '` (the naive loop: `/chat`, one broadcast set), and is in ' +
    'once `joined` arrives (the naive loop sends nothing: in once upgraded); ' + AT_ONCE + ' connect at a time over all the ' +
    'load generators. Time to fill runs from the first connect to the last client in. Server CPU is utime + stime from ' +
    '/proc over the fill and until the server is idle again (presence and occupancy frames go out after the last join), ' +
    'and bytes are everything the clients read in that time, upgrade responses included.' + problems(byServer(results, sizes), servers))
  return parts
}

/** The problems of every size, under each server. */
function byServer (results, sizes) {
  const out = {}
  for (const size of sizes) {
    for (const [id, r] of Object.entries(results[size])) {
      if (r === undefined) continue
      const o = (out[id] ??= { reasons: [], failures: {} })
      o.reasons.push(...r.reasons.map((x) => `${fmtCount(size)}: ${x}`))
      for (const [k, v] of Object.entries(r.failures)) o.failures[k] = (o.failures[k] ?? 0) + v
    }
  }
  return out
}
