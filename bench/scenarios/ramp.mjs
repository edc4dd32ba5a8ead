// Fan-out ramp: one publisher, N subscribers, the delivery rate stepping up
// until a step loses a delivery, reaches the p99 limit or closes a socket.
import { closeCount } from '../lib/closes.mjs'
import { fmtCount, fmtMs, fmtNum, fmtPct, fmtRate, fmtRatio, table } from '../lib/format.mjs'
import { judge, runLoad } from '../lib/load.mjs'
import { log } from '../lib/log.mjs'
import { Rig } from '../lib/rig.mjs'
import { attempt } from '../lib/rounds.mjs'
import { DISTURBED, LOADGEN_BUSY, P99_LIMIT_MS } from '../lib/settings.mjs'

/** results[server id][subscribers] = the ramp of that server at that size. */
export async function run (bench, servers) {
  const results = {}
  for (const server of servers) {
    results[server.id] = {}
    for (const subs of bench.cfg.rampSizes) {
      log(`ramp: ${server.label}, ${subs} subscribers`)
      results[server.id][subs] = await attempt(bench, `ramp ${server.label} ${subs}`, () => ramp(bench, server, subs))
    }
  }
  return results
}

/** A rig with `subs` subscribers and one publisher, settled. */
async function rampRig (bench, server, subs) {
  const rig = await Rig.start(bench, server)
  try {
    const conn = await rig.connect({ subs, pubs: 1 })
    if (conn.ready !== conn.wanted) throw new Error(`${server.label}: ${conn.ready}/${conn.wanted} connected (${JSON.stringify(conn.failures)})`)
    log(`  ${subs + 1} sockets open in ${conn.seconds.toFixed(1)} s`)
    rig.connectSeconds = conn.seconds
    await rig.quiet(60_000)
    return rig
  } catch (err) {
    await rig.stop()
    throw err
  }
}

async function ramp (bench, server, subs) {
  const { cfg } = bench
  let rig = null
  let connectSeconds = null
  const steps = []
  const step = async (target) => {
    for (let attempt = 1; ; attempt++) {
      if (rig === null) {
        rig = await rampRig(bench, server, subs)
        connectSeconds ??= rig.connectSeconds
      }
      const r = await runLoad(rig, { rate: target / subs, durationMs: cfg.stepMs, receivers: subs, drainMs: cfg.drainMs })
      r.target = target
      r.reasons = judge(r, cfg.drainMs)
      r.pass = r.reasons.length === 0
      r.attempt = attempt
      log(`  ${server.label} ${subs} subs: ${fmtRate(target)} → ${r.pass ? 'pass' : 'FAIL'} ` +
        `(got ${fmtRate(r.deliveriesPerSec)}, p99 ${fmtMs(r.p99)}, server ${fmtPct(r.serverCpu)}, ` +
        `loadgen ${fmtPct(r.loadgenCpu)}, others ${fmtPct(r.foreignCpu)})` + (r.pass ? '' : ` ${r.reasons.join('; ')}`))
      // Let the server finish what it has before the next step; a rig that
      // lost subscribers or does not calm down is replaced, a closed
      // publisher (1008 from fastify-chat when too many of its frames wait)
      // is replaced alone: refilling a big room takes minutes.
      const calm = await rig.quiet(r.pass ? 5000 : 15_000)
      if (!calm || closeCount({ sub: r.closes.sub ?? {} }) > 0) {
        await rig.stop()
        rig = null
      } else if (r.newCloses > 0) {
        const again = await rig.connect({ subs: 0, pubs: 1, sample: 0 })
        if (again.ready !== 1) {
          await rig.stop()
          rig = null
        } else {
          await rig.quiet(5000)
        }
      }
      if (r.pass || r.foreignCpu < DISTURBED || attempt > cfg.retries) {
        steps.push(r)
        return r
      }
      log(`  other processes took ${fmtPct(r.foreignCpu)} of a core during that step: repeating it`)
    }
  }
  try {
    let best = null
    let failed = null
    for (let target = cfg.rampStart; target <= cfg.rampMax; target *= cfg.rampFactor) {
      const r = await step(target)
      if (!r.pass) {
        failed = r
        break
      }
      best = r
    }
    for (let i = 0; i < cfg.refine && failed !== null && best !== null; i++) {
      const r = await step(Math.round(Math.sqrt(best.target * failed.target) / 1000) * 1000)
      if (r.pass) best = r
      else failed = r
    }
    return { subs, connectSeconds, steps, best, failed, capped: failed === null }
  } finally {
    await rig?.stop()
  }
}

/** The report's section: the max per size side by side, then every ramp's details. */
export function section (bench, servers, results) {
  const { cfg } = bench
  const others = servers.filter((s) => s.id !== 'naive')
  const hasNaive = servers.some((s) => s.id === 'naive')
  const rows = cfg.rampSizes.map((subs) => {
    const r = Object.fromEntries(servers.map((s) => [s.id, results[s.id]?.[subs]]))
    const value = (x) => x?.best?.deliveriesPerSec ?? NaN
    const cell = (x) => {
      if (x === undefined) return 'failed'
      if (x.best === null) return `< ${fmtRate(cfg.rampStart)}`
      const busy = x.best.loadgenMax >= LOADGEN_BUSY ? ' †' : ''
      return `${x.capped ? '≥ ' : ''}${fmtRate(x.best.deliveriesPerSec)}${busy}`
    }
    return [fmtCount(subs), ...servers.map((s) => cell(r[s.id])),
      ...(hasNaive ? others.map((s) => fmtRatio(value(r[s.id]), value(r.naive))) : [])]
  })
  const detail = []
  for (const s of servers) {
    for (const subs of cfg.rampSizes) {
      const x = results[s.id]?.[subs]
      if (x === undefined) {
        detail.push([s.label, fmtCount(subs), 'failed', '', '', '', '', '', '', ''])
        continue
      }
      const b = x.best
      detail.push([
        s.label, fmtCount(subs), `${x.connectSeconds.toFixed(1)} s`,
        b === null ? '–' : fmtRate(b.deliveriesPerSec),
        b === null ? '–' : `${fmtMs(b.p50)} / ${fmtMs(b.p99)}`,
        b === null ? '–' : fmtPct(b.serverCpu),
        b === null ? '–' : fmtPct(b.loadgenCpu),
        b === null ? '–' : fmtPct(b.foreignCpu),
        x.failed === null ? `none up to ${fmtRate(cfg.rampMax)}` : fmtRate(x.failed.target),
        x.failed === null ? '' : `${x.failed.reasons.join('; ')} (loadgen ${fmtPct(x.failed.loadgenCpu)}, others ${fmtPct(x.failed.foreignCpu)})`
      ])
    }
  }
  return [
    '## Fan-out ramp: max deliveries/s',
    '',
    table(['Subscribers', ...servers.map((s) => s.label), ...(hasNaive ? others.map((s) => `${s.label} ÷ naive`) : [])], rows),
    '',
    `One publisher; rate steps ${cfg.rampFactor === 2 ? 'double' : `grow ${cfg.rampFactor}×`} from ${fmtNum(cfg.rampStart)} deliveries/s` +
      (cfg.refine > 0 ? `, then ${cfg.refine} bisection steps between the last passing and the first failing one` : '') +
      `; ${cfg.stepMs / 1000} s per step. A step passes when every message sent in it reached every subscriber ` +
      `within ${cfg.drainMs / 1000} s after the step, p99 latency < ${P99_LIMIT_MS} ms, and no socket closed. ` +
      '"max" is the delivery rate of the highest passing step. † the load generator was at ≥ ' +
      `${LOADGEN_BUSY}% of its core at that step, so the number may be its limit rather than the server's.`,
    '',
    'Ramp details:',
    '',
    table(['Server', 'Subscribers', 'Connect', 'Max', 'p50 / p99 at max', 'Server CPU at max', 'Loadgen CPU at max', 'Others at max', 'First failing step', 'Why it failed'], detail)
  ]
}
