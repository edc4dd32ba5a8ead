// Overload (fastify-chat only): twice the rate the ramp found it can carry,
// with some subscribers that stop reading; what the server drops, closes and
// holds in memory while the others keep getting their messages.
import { setTimeout as sleep } from 'node:timers/promises'
import { describeCloses } from '../lib/closes.mjs'
import { fmtCount, fmtMiB, fmtMs, fmtNum, fmtPct, fmtRate, table } from '../lib/format.mjs'
import { runLoad } from '../lib/load.mjs'
import { log } from '../lib/log.mjs'
import { withRig } from '../lib/rig.mjs'
import { attempt } from '../lib/rounds.mjs'

const OVERLOAD = { subs: 1000, slow: 50 }
const ASSUMED_MAX = 500_000 // deliveries/s, when the ramp did not measure 1000 subscribers

/** The overload run of the `chat` server among `servers`; null when it is not among them. */
export async function run (bench, servers, results) {
  const server = servers.find((s) => s.id === 'chat')
  if (server === undefined) return null
  const measured = results.ramp.chat?.[OVERLOAD.subs]?.best?.deliveriesPerSec
  const maxRate = measured ?? ASSUMED_MAX
  log(`overload: fastify-chat at 2 × ${fmtRate(maxRate)}${measured === undefined ? ' (no ramp result for 1000 subscribers: assumed)' : ''}`)
  const r = await attempt(bench, 'overload', () => overload(bench, server, maxRate))
  if (r !== undefined) r.maxMeasured = measured !== undefined
  return r
}

async function overload (bench, server, maxRate) {
  const { cfg } = bench
  return await withRig(bench, server, async (rig) => {
    const conn = await rig.connect({ subs: OVERLOAD.subs, pubs: 1 })
    if (conn.ready !== conn.wanted) throw new Error(`${server.label}: ${conn.ready}/${conn.wanted} connected`)
    await rig.quiet(60_000)
    const slowShare = rig.share(OVERLOAD.slow)
    await rig.all('pause', (i) => ({ count: slowShare[i] }))
    const rssStart = rig.rssKiB()
    let peak = rssStart
    let slowClosed = 0
    let resumedAtMs = null
    const target = 2 * maxRate
    // Publish for at least overloadMs and, until every slow socket has been
    // closed by the server, up to overloadMaxMs: the kernel buffers of a
    // paused socket take a while to fill before `maxBufferedBytes` is reached.
    const r = await runLoad(rig, {
      rate: target / OVERLOAD.subs,
      durationMs: cfg.overloadMaxMs,
      receivers: OVERLOAD.subs - OVERLOAD.slow,
      drainMs: cfg.drainMs,
      reconnect: true,
      watch: async (elapsed) => {
        peak = Math.max(peak, rig.rssKiB())
        try {
          slowClosed = JSON.parse(await rig.control('stats')).drops?.slow_consumer ?? 0
        } catch {}
        if (resumedAtMs === null && slowClosed >= OVERLOAD.slow) {
          // Read again at once, so what the server queued before its close
          // frame (and the close frame itself) arrives before closeTimeout.
          await rig.all('resume')
          resumedAtMs = elapsed
        }
        return elapsed >= cfg.overloadMs && resumedAtMs !== null
      }
    })
    r.target = target
    r.slowClosedAtMs = resumedAtMs
    r.rssEndKiB = rig.rssKiB()
    r.rssStartKiB = rssStart
    r.rssPeakKiB = Math.max(peak, r.rssEndKiB)
    try {
      r.serverStats = JSON.parse(await rig.control('stats'))
    } catch {
      r.serverStats = null
    }
    if (resumedAtMs === null) await rig.all('resume')
    const until = Date.now() + 5000
    let s = await rig.stats()
    while ((s.open.paused ?? 0) > 0 && Date.now() < until) {
      await sleep(100)
      s = await rig.stats()
    }
    r.after = { closes: s.closes, open: s.open }
    // Once the closed sockets are gone (closeTimeout is 2 s) and after a GC.
    await sleep(Math.max(0, 2500 - (Date.now() - until + 5000)))
    await rig.gc()
    r.rssAfterKiB = rig.rssKiB()
    log(`  ${server.label}: ${fmtRate(r.deliveriesPerSec)} to readers, p99 ${fmtMs(r.p99)}, RSS end ${fmtMiB(r.rssEndKiB)}, ` +
      `slow_consumer ${r.serverStats?.drops?.slow_consumer ?? '?'}, ${describeCloses(s.closes) || 'no closes'}`)
    return r
  })
}

/** The report's section; none when the chat server was not among `servers`. */
export function section (bench, servers, o) {
  const { cfg } = bench
  if (!servers.some((s) => s.id === 'chat')) return null
  const title = `## Overload (fastify-chat only): 2 × max rate, ${fmtCount(OVERLOAD.subs)} subscribers, ${OVERLOAD.slow} of which stop reading`
  if (o === undefined || o === null) return [title, '', '_Did not run; see the errors below._']
  const groupCloses = (group) => {
    const codes = o.after.closes[group] ?? {}
    const n = Object.values(codes).reduce((a, b) => a + b, 0)
    if (n === 0) return '0'
    return `${n} (${Object.entries(codes).map(([code, k]) => `${k} × ${code === '1006' ? 'no close frame' : code}`).join(', ')})`
  }
  return [
    title,
    '',
    table(['Measure', 'Value'], [
      ['Offered rate', `${fmtNum(o.target)} deliveries/s (${fmtCount(o.rate)} msg/s)${o.maxMeasured ? '' : ', assumed max'}, for ${o.publishSeconds.toFixed(1)} s`],
      ['Every slow subscriber closed by the server after', o.slowClosedAtMs === null ? `not within ${cfg.overloadMaxMs / 1000} s` : `${(o.slowClosedAtMs / 1000).toFixed(1)} s`],
      ['Delivered to the reading subscribers', `${fmtRate(o.deliveriesPerSec)}: ${fmtCount(o.received)} of the ${fmtCount(o.expected)} sent (× ${OVERLOAD.subs - OVERLOAD.slow})`],
      ['Reading subscribers: latency p50 / p99', `${fmtMs(o.p50)} / ${fmtMs(o.p99)}`],
      [`Slow subscribers closed (of ${OVERLOAD.slow})`, groupCloses('paused')],
      [`Reading subscribers closed (of ${OVERLOAD.subs - OVERLOAD.slow})`, groupCloses('sub')],
      ['Publisher closed (it reconnects 50 ms later)', groupCloses('pub')],
      ['Server: slow_consumer drops (app.chat.stats())', o.serverStats === null ? '–' : fmtCount(o.serverStats.drops?.slow_consumer ?? 0)],
      ['Server RSS at start / peak / end of publishing', `${fmtMiB(o.rssStartKiB)} / ${fmtMiB(o.rssPeakKiB)} / ${fmtMiB(o.rssEndKiB)}`],
      ['Server RSS once the closed sockets are gone, after a GC', fmtMiB(o.rssAfterKiB)],
      ['Server CPU (% of one core)', fmtPct(o.serverCpu)],
      ['Load generator CPU (% of one core)', fmtPct(o.loadgenCpu)],
      ['Other processes (% of one core)', fmtPct(o.foreignCpu)]
    ]),
    '',
    'The slow subscribers pause their sockets before publishing starts. Publishing lasts at least ' +
      `${cfg.overloadMs / 1000} s and, until the server has closed all ${OVERLOAD.slow} slow ones (its \`slow_consumer\` ` +
      `count, polled every 250 ms), up to ${cfg.overloadMaxMs / 1000} s: a paused socket first fills the kernel buffers, ` +
      'then `maxBufferedBytes` (default 1 MiB). Once that count is reached the slow ones read again, so a close code ' +
      'above is the one in the close frame they read; "no close frame" means the connection ended without one (the ' +
      'server terminated it after `closeTimeout`, 2 s, with the close frame still queued behind the unread data). ' +
      'RSS is the server\'s VmRSS. When the server reads the publisher slower than it sends, it stops reading that ' +
      'socket (64 frames waiting) until it catches up, so TCP pushes back on the publisher; when over an eighth of ' +
      'the room falls behind, new messages are refused with an `overloaded` error frame instead of being sent. ' +
      '"Sent" counts what the publisher wrote, so a refused message shows as not delivered.'
  ]
}
