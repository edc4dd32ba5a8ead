// One window of publishing on a rig, what it delivered, and whether that
// counts as a pass.
import { setTimeout as sleep } from 'node:timers/promises'
import { closeCount, closesSince, describeCloses } from './closes.mjs'
import { fmtCount, fmtMs } from './format.mjs'
import { P99_LIMIT_MS } from './settings.mjs'

/**
 * Publishes at `rate` msg/s per publisher for `durationMs`, then waits up to
 * `drainMs` for every delivery of what was sent. Counts are reset first, so
 * only messages of this window are counted (the previous one had drained).
 * With `warmupMs`, publishing runs that long first without a pause: its
 * messages count as sent and delivered, but latency and CPU are measured
 * from its end.
 */
export async function runLoad (rig, { rate, durationMs, warmupMs = 0, receivers, drainMs, watch, reconnect = false, extras = false }) {
  await rig.all('reset')
  const closesBefore = (await rig.stats()).closes
  const publishStarted = performance.now()
  let stoppedEarly = false
  const publishing = rig.all('publish', () => ({ rate, durationMs, warmupMs, reconnect, extras }), warmupMs + durationMs + 30_000)
  if (warmupMs > 0) await sleep(warmupMs)
  const before = rig.snap()
  if (watch !== undefined) {
    // `watch(elapsedMs)` runs every 250 ms while publishing; true ends it early.
    const state = { done: false }
    publishing.then(() => { state.done = true }, () => { state.done = true })
    const started = Date.now()
    while (!state.done) {
      await sleep(250)
      if (!state.done && await watch(Date.now() - started)) {
        await rig.all('stop')
        stoppedEarly = true
        break
      }
    }
  }
  const pubs = await publishing
  const publishSeconds = stoppedEarly ? (performance.now() - publishStarted) / 1000 : (warmupMs + durationMs) / 1000
  const sent = pubs.reduce((a, p) => a + p.sent, 0)
  const planned = pubs.reduce((a, p) => a + p.planned, 0)
  const maxLagMs = Math.max(...pubs.map((p) => p.maxLagMs))
  const reconnects = pubs.reduce((a, p) => a + p.reconnects, 0)
  const skipped = pubs.reduce((a, p) => a + p.skipped, 0)
  const expected = sent * receivers
  const drainUntil = Date.now() + drainMs
  let stats = await rig.stats()
  while (stats.received < expected && Date.now() < drainUntil) {
    await sleep(25)
    stats = await rig.stats()
  }
  const usage = rig.usage(before, rig.snap())
  return {
    rate,
    durationMs,
    sent,
    planned,
    expected,
    received: stats.received,
    lost: expected - stats.received,
    publishSeconds,
    deliveriesPerSec: stats.received / publishSeconds,
    p50: stats.hist.quantile(0.5),
    p99: stats.hist.quantile(0.99),
    max: stats.hist.max,
    samples: stats.hist.total,
    errors: stats.errors,
    newCloses: closeCount(stats.closes) - closeCount(closesBefore),
    stepCloses: closesSince(stats.closes, closesBefore),
    closes: stats.closes,
    maxLagMs,
    reconnects,
    skipped,
    ...usage
  }
}

/** Why a window of `runLoad` does not pass (drained within `drainMs`); none when it does. */
export function judge (r, drainMs) {
  const reasons = []
  if (r.sent < r.planned) reasons.push(`publisher sent ${r.sent}/${r.planned}`)
  if (r.lost > 0) reasons.push(`${fmtCount(r.lost)} of ${fmtCount(r.expected)} not delivered within ${drainMs / 1000} s`)
  if (r.lost < 0) reasons.push(`${fmtCount(-r.lost)} frames more than expected`)
  if (!(r.p99 < P99_LIMIT_MS)) reasons.push(`p99 ${fmtMs(r.p99)}`)
  if (r.newCloses > 0) reasons.push(describeCloses(r.stepCloses))
  if (r.errors > 0) reasons.push(`${r.errors} error frames`)
  return reasons
}
