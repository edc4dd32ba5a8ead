// Repeating measurements: a failure is recorded rather than ending the run,
// a run other processes disturbed is redone, and noisy figures are the median
// of several rounds.
import { fmtPct } from './format.mjs'
import { log } from './log.mjs'
import { DISTURBED } from './settings.mjs'

/** `fn()`, or undefined after recording its error in `bench.failures`. */
export async function attempt (bench, what, fn) {
  try {
    return await fn()
  } catch (err) {
    bench.failures.push(`${what}: ${err.message}`)
    log(`${what} failed: ${err.message}`)
    return undefined
  }
}

/** Runs `measure` again (up to `retries` times) while other processes disturb it; keeps the least disturbed run. */
export async function leastDisturbed (rig, label, retries, measure) {
  let best = null
  for (let attempt = 1; attempt <= 1 + retries; attempt++) {
    const r = await measure()
    r.attempt = attempt
    if (best === null || r.foreignCpu < best.foreignCpu) best = r
    if (r.foreignCpu < DISTURBED) break
    if (attempt <= retries) {
      log(`  ${label}: other processes took ${fmtPct(r.foreignCpu)} of a core: repeating`)
      await rig.quiet(15_000)
    }
  }
  return best
}

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/**
 * Measures every server `bench.cfg.rounds` times, the servers taking turns,
 * and keeps the median of each figure in `keys` (the rest from the run at the
 * median of the first); `each[key]` lists every round's figure. Server CPU
 * moves by several percent between runs of the same code, which one run per
 * server cannot tell from a difference.
 */
export async function inRounds (bench, scenario, servers, measure, keys) {
  const { rounds } = bench.cfg
  const runs = {}
  for (let round = 1; round <= rounds; round++) {
    for (const server of servers) {
      log(`${scenario}: ${server.label}${rounds > 1 ? `, round ${round} of ${rounds}` : ''}`)
      const r = await attempt(bench, `${scenario} ${server.label}`, () => measure(server))
      if (r !== undefined) (runs[server.id] ??= []).push(r)
    }
  }
  const merged = {}
  for (const [id, list] of Object.entries(runs)) {
    const middle = [...list].sort((a, b) => a[keys[0]] - b[keys[0]])[(list.length - 1) >> 1]
    merged[id] = { ...middle, rounds: list.map((r) => r[keys[0]]), each: Object.fromEntries(keys.map((key) => [key, list.map((r) => r[key])])) }
    for (const key of keys) merged[id][key] = median(list.map((r) => r[key]))
  }
  return merged
}
