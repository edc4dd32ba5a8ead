// Chatty room: many publishers in one room at a moderate rate, every message
// to every member, the sender included; latency and CPU at a realistic load.
import { fmtCount, fmtMs, fmtPct, fmtRate, problems, roundsNote, roundsRow, sideBySide } from '../lib/format.mjs'
import { judge, runLoad } from '../lib/load.mjs'
import { log } from '../lib/log.mjs'
import { withRig } from '../lib/rig.mjs'
import { inRounds, leastDisturbed } from '../lib/rounds.mjs'

const CHATTY = { clients: 200, publishers: 20, rate: 1000 }
/** msg/s in all: `--chatty-rate`, or the scenario's. */
const rateOf = (cfg) => cfg.chattyRate ?? CHATTY.rate

/** results[server id] = the median run of that server. */
export async function run (bench, servers) {
  return await inRounds(bench, 'chatty room', servers, (server) => chatty(bench, server),
    ['serverCpu', 'p50', 'p99', 'loadgenCpu', 'foreignCpu'])
}

async function chatty (bench, server) {
  const { cfg } = bench
  return await withRig(bench, server, async (rig) => {
    const conn = await rig.connect({ subs: CHATTY.clients - CHATTY.publishers, pubs: CHATTY.publishers, pubsCount: true })
    if (conn.ready !== conn.wanted) throw new Error(`${server.label}: ${conn.ready}/${conn.wanted} connected`)
    await rig.quiet(60_000)
    const r = await leastDisturbed(rig, server.label, cfg.retries,
      () => runLoad(rig, { rate: rateOf(cfg) / CHATTY.publishers, durationMs: cfg.chattyMs, warmupMs: cfg.chattyWarmupMs, receivers: CHATTY.clients, drainMs: cfg.drainMs, extras: server.extras ?? false }))
    r.reasons = judge(r, cfg.drainMs)
    log(`  ${server.label}: p50 ${fmtMs(r.p50)}, p99 ${fmtMs(r.p99)}, server ${fmtPct(r.serverCpu)}, loadgen ${fmtPct(r.loadgenCpu)}`)
    return r
  })
}

export function section (bench, servers, results) {
  const { cfg } = bench
  return [
    `## Chatty room: ${CHATTY.clients} clients, ${CHATTY.publishers} of them publishing, ${fmtCount(rateOf(cfg))} msg/s in all`,
    '',
    sideBySide('', results, servers, [
      ['Latency p50', (r) => r.p50, fmtMs],
      ['Latency p99', (r) => r.p99, fmtMs],
      ...(cfg.rounds > 1 ? [['p99, each round', (r) => r.each.p99, (list) => list.map(fmtMs).join(', '), false]] : []),
      ['Server CPU (% of one core)', (r) => r.serverCpu, fmtPct],
      ...roundsRow(cfg.rounds, (r) => r.map(fmtPct).join(', ')),
      ['Deliveries/s', (r) => r.deliveriesPerSec, fmtRate, false],
      ['Not delivered', (r) => r.lost, fmtCount, false],
      ['Load generator CPU (% of one core)', (r) => r.loadgenCpu, fmtPct, false],
      ['Other processes (% of one core)', (r) => r.foreignCpu, fmtPct, false]
    ]),
    '',
    `Each publisher sends ${rateOf(cfg) / CHATTY.publishers} msg/s for ${cfg.chattyMs / 1000} s, after ${cfg.chattyWarmupMs / 1000} s of the same ` +
      'that count for delivery but not for latency or CPU; every message goes to all ' +
      `${CHATTY.clients} clients, its sender included (${fmtRate(rateOf(cfg) * CHATTY.clients)} deliveries).` +
      (servers.some((s) => s.extras) ? ' In the "signals and reads" column each subscriber also sends a `read` of the latest offset it has once a second, and each publisher a `typing` signal once a second, which goes to every other member; its users come from `identify`, so every read that moves a position is a store write.' : '') +
      (servers.some((s) => typeof s.extras === 'string') ? ' The "reads only" and "signals only" columns send one of the two.' : '') +
      (servers.some((s) => s.id === 'dropped') ? ' The "extras dropped on arrival" column sends the same extras to a server that drops them as ws hands them over, before fastify-chat sees them: what their traffic alone costs.' : '') +
      roundsNote(cfg.rounds) +
      problems(results, servers)
  ]
}
