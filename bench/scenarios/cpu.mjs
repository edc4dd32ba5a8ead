// Server CPU per delivery: the same fixed load for every server, well under
// what any of them can take, so the figure is cost rather than capacity. The
// floor server shows what the write alone costs.
import { fmtCount, fmtMs, fmtNum, fmtPct, fmtRate, fmtUs, problems, roundsNote, roundsRow, sideBySide } from '../lib/format.mjs'
import { judge, runLoad } from '../lib/load.mjs'
import { log } from '../lib/log.mjs'
import { withRig } from '../lib/rig.mjs'
import { inRounds, leastDisturbed } from '../lib/rounds.mjs'

const CPU_RATE = 100_000 // deliveries/s
const CPU_SUBS = 1000

/** results[server id] = the median run of that server. */
export async function run (bench, servers) {
  return await inRounds(bench, `cpu at ${fmtNum(CPU_RATE)} deliveries/s`, servers, (server) => fixedCpu(bench, server),
    ['usPerDelivery', 'serverCpu', 'p50', 'p99', 'loadgenCpu', 'foreignCpu'])
}

async function fixedCpu (bench, server) {
  const { cfg } = bench
  return await withRig(bench, server, async (rig) => {
    const conn = await rig.connect({ subs: CPU_SUBS, pubs: 1 })
    if (conn.ready !== conn.wanted) throw new Error(`${server.label}: ${conn.ready}/${conn.wanted} connected`)
    await rig.quiet(60_000)
    const r = await leastDisturbed(rig, server.label, cfg.retries,
      () => runLoad(rig, { rate: CPU_RATE / CPU_SUBS, durationMs: cfg.cpuMs, receivers: CPU_SUBS, drainMs: cfg.drainMs }))
    r.usPerDelivery = r.received > 0 ? r.serverCpuSec * 1e6 / r.received : NaN
    r.reasons = judge(r, cfg.drainMs)
    log(`  ${server.label}: ${fmtUs(r.usPerDelivery)} per delivery, server ${fmtPct(r.serverCpu)}, p99 ${fmtMs(r.p99)}, loadgen ${fmtPct(r.loadgenCpu)}`)
    return r
  })
}

export function section (bench, servers, results) {
  const { cfg } = bench
  return [
    `## Server CPU per delivery at ${fmtNum(CPU_RATE)} deliveries/s, ${fmtCount(CPU_SUBS)} subscribers`,
    '',
    sideBySide('', results, servers, [
      ['Server CPU per delivery', (r) => r.usPerDelivery, fmtUs],
      ...roundsRow(cfg.rounds, (r) => r.map(fmtUs).join(', ')),
      ['Server CPU (% of one core)', (r) => r.serverCpu, fmtPct],
      ['Deliveries/s achieved', (r) => r.deliveriesPerSec, fmtRate, false],
      ['Latency p50', (r) => r.p50, fmtMs],
      ['Latency p99', (r) => r.p99, fmtMs],
      ['Not delivered', (r) => r.lost, fmtCount, false],
      ['Load generator CPU (% of one core)', (r) => r.loadgenCpu, fmtPct, false],
      ['Other processes (% of one core)', (r) => r.foreignCpu, fmtPct, false]
    ]),
    '',
    `One publisher at ${fmtCount(CPU_RATE / CPU_SUBS)} msg/s for ${cfg.cpuMs / 1000} s, the same load for every server. ` +
      'CPU is utime + stime of the server process from /proc over the window (publishing and the drain after it), ' +
      'divided by the deliveries counted.' + roundsNote(cfg.rounds) +
      (servers.some((s) => s.id === 'floor')
        ? ' The floor is not a chat server: it wraps each message in an envelope of fastify-chat\'s shape and size, frames it ' +
          'once and writes it to the stream under every socket with no check of any kind (bench/servers/floor.mjs). What it ' +
          'spends per delivery is the write itself: the least any server that writes each delivery can spend here.'
        : '') + problems(results, servers)
  ]
}
