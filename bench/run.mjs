// `npm run bench [-- --quick]`: fastify-chat side by side with the naive
// broadcast loop on @fastify/websocket and with Socket.IO. Every server runs
// in its own process (pinned to core 0 when taskset works) and every scenario
// gets a fresh one; the load generator (bench/loadgen.mjs) runs in separate
// processes on the other cores, over loopback only, and its CPU is reported
// next to every number so a saturated generator is visible.
//
// Options (after `--`):
//   --quick               smoke run (under two minutes)
//   --servers=a,b         subset of chat,sqlite,naive,floor,socketio
//   --scenarios=a,b       subset of ramp,cpu,chatty,idle,overload
//   --workers=N           load generator processes (default: cores - 1, at least 1)
//   --nice=N              run servers and load generators at this nice level (e.g. -10 on a
//                         machine other work shares; needs root for negative values)
//   --out=FILE            Markdown output (default bench/results-latest.md)
//   --subs=a,b            fan-out ramp at these subscriber counts only (default 100,1000,5000)
//   --cpu-prof=DIR        write a V8 CPU profile of every server process to DIR (open it in Chrome DevTools)
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Histogram } from './lib/histogram.mjs'
import { cpuSeconds, killAll, machineBusySeconds, openFilesLimit, spawnNode, statusKiB, stopChild, tasksetWorks } from './lib/proc.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const runStarted = Date.now()

// ---------------------------------------------------------------- options ---

const argv = process.argv.slice(2)
const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1]
const QUICK = argv.includes('--quick')
const OUT = option('out') ?? join(here, 'results-latest.md')

const CFG = QUICK
  ? {
      rampSizes: [100, 1000],
      rampStart: 200_000,
      rampFactor: 4,
      rampMax: 3_200_000,
      refine: 0,
      stepMs: 1000,
      drainMs: 1000,
      cpuMs: 1500,
      chattyMs: 1500,
      rounds: 1,
      idle: 2000,
      overloadMs: 2000,
      overloadMaxMs: 12_000,
      retries: 0,
      calmBudgetMs: 5000,
      storeTimeoutMs: 90_000
    }
  : {
      rampSizes: [100, 1000, 5000],
      rampStart: 50_000,
      rampFactor: 2,
      rampMax: 12_800_000,
      refine: 2,
      stepMs: 3000,
      drainMs: 2000,
      cpuMs: 10_000,
      chattyMs: 10_000,
      rounds: 3,
      idle: 10_000,
      overloadMs: 10_000,
      overloadMaxMs: 30_000,
      retries: 2,
      calmBudgetMs: 10 * 60_000,
      storeTimeoutMs: 15 * 60_000
    }

if (option('subs') !== undefined) CFG.rampSizes = option('subs').split(',').map(Number)

const P99_LIMIT_MS = 100
const SAMPLED = 20 // subscribers per run that decode payloads for latency
const CPU_RATE = 100_000 // deliveries/s of the fixed-load CPU scenario
const CPU_SUBS = 1000
const CHATTY = { clients: 200, publishers: 20, rate: 1000 }
const OVERLOAD = { subs: 1000, slow: 50 }
const LOADGEN_BUSY = 90 // % of a core past which the generator may be the bottleneck
const DISTURBED = 30 // % of a core used by other processes past which a failed or measured run is repeated
const CALM = 10 // % of a core used by other processes under which the machine counts as calm
let calmBudgetMs = CFG.calmBudgetMs // total time the run may wait for other processes to finish
let calmWaitedMs = 0
const NICE = Number(option('nice') ?? 0)
const CPU_PROF = option('cpu-prof')
const IDLE_ROOM = 100 // fastify-chat idle sockets per room (see the note under the idle table)
const HARD_LIMIT_MS = (QUICK ? 10 : 60) * 60_000

const cores = os.cpus().length
const pinned = tasksetWorks() && cores >= 2
const workersWanted = Number(option('workers') ?? Math.max(1, Math.min(4, cores - 1)))
const SERVER_CPUS = pinned ? '0' : null
const LOADGEN_CPUS = pinned ? (cores > 2 ? `1-${cores - 1}` : '1') : null

// ---------------------------------------------------------- cleanup/guard ---

process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping every benchmark process`)
    killAll()
    process.exit(130)
  })
}
process.on('unhandledRejection', (err) => {
  console.error(err)
  killAll()
  process.exit(1)
})
const hardLimit = setTimeout(() => {
  console.error(`bench: still running after ${HARD_LIMIT_MS / 60_000} min, giving up`)
  killAll()
  process.exit(1)
}, HARD_LIMIT_MS)
hardLimit.unref()

// ---------------------------------------------------------------- servers ---

const dist = await import(join(root, 'dist', 'index.js'))
const hasSqlite = typeof dist.sqliteStore === 'function'

const ALL_SERVERS = [
  { id: 'chat', label: 'fastify-chat', file: 'chat.mjs', kind: 'chat' },
  { id: 'sqlite', label: 'fastify-chat (SQLite store)', file: 'chat.mjs', kind: 'chat', env: { CHAT_STORE: 'sqlite' }, only: ['ramp', 'cpu'] },
  { id: 'naive', label: 'naive loop', file: 'naive.mjs', kind: 'naive' },
  { id: 'floor', label: 'floor (raw writes)', file: 'floor.mjs', kind: 'naive', only: ['cpu'] },
  { id: 'socketio', label: 'Socket.IO', file: 'socketio.mjs', kind: 'socketio' }
]
const wantedServers = option('servers')?.split(',') ?? ALL_SERVERS.map((s) => s.id)
const SERVERS = ALL_SERVERS.filter((s) => wantedServers.includes(s.id) && (s.id !== 'sqlite' || hasSqlite))
const SCENARIOS = option('scenarios')?.split(',') ?? ['ramp', 'cpu', 'chatty', 'idle', 'overload']
const serversFor = (scenario) => SERVERS.filter((s) => s.only === undefined || s.only.includes(scenario))

// -------------------------------------------------------------------- rig ---

let nextId = 1

/** One server process and its load generator processes, for one scenario. */
class Rig {
  static async start (server) {
    const rig = new Rig()
    rig.server = server
    const profile = CPU_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`]
    rig.proc = spawnNode(['--expose-gc', ...profile, join(here, 'servers', server.file)], {
      cpus: SERVER_CPUS,
      nice: NICE,
      env: { ...process.env, ...server.env }
    })
    const port = Number(await rig.proc.lines.next(30_000))
    if (!Number.isInteger(port) || port <= 0) throw new Error(`${server.label}: no port on stdout`)
    rig.port = port
    rig.workers = []
    for (let i = 0; i < workersWanted; i++) {
      const child = spawnNode([join(here, 'loadgen.mjs')], { cpus: LOADGEN_CPUS, nice: NICE, ipc: true })
      child.pending = new Map()
      child.on('message', ({ id, result, error }) => {
        const waiter = child.pending.get(id)
        if (waiter === undefined) return
        child.pending.delete(id)
        if (error === undefined) waiter.resolve(result)
        else waiter.reject(new Error(`loadgen: ${error}`))
      })
      child.on('exit', () => {
        for (const waiter of child.pending.values()) waiter.reject(new Error('loadgen exited'))
        child.pending.clear()
      })
      rig.workers.push(child)
    }
    machine.serverFdLimit ??= openFilesLimit(rig.proc.pid)
    machine.loadgenFdLimit ??= openFilesLimit(rig.workers[0].pid)
    return rig
  }

  call (worker, cmd, args = {}, timeoutMs = 60_000) {
    return new Promise((resolve, reject) => {
      const id = nextId++
      const timer = setTimeout(() => {
        worker.pending.delete(id)
        reject(new Error(`loadgen ${cmd}: no answer within ${timeoutMs} ms`))
      }, timeoutMs)
      worker.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      })
      worker.send({ id, cmd, ...args })
    })
  }

  /** Runs a command on every worker; `perWorker(i)` gives each its own arguments. */
  all (cmd, perWorker = () => ({}), timeoutMs) {
    return Promise.all(this.workers.map((w, i) => this.call(w, cmd, perWorker(i), timeoutMs)))
  }

  /** Splits `n` over the workers: worker i gets share(n)[i]. */
  share (n) {
    const w = this.workers.length
    return this.workers.map((_, i) => Math.floor(n / w) + (i < n % w ? 1 : 0))
  }

  async connect ({ subs, pubs = 0, pubsCount = false, sample = SAMPLED, roomSize = 0 }) {
    const subShare = this.share(subs)
    const pubShare = pubs === 1 ? this.workers.map((_, i) => (i === 0 ? 1 : 0)) : this.share(pubs)
    const timeoutMs = 60_000 + subs * 80
    const started = this.snap()
    const results = await this.all('connect', (i) => ({
      port: this.port,
      kind: this.server.kind,
      subs: subShare[i],
      pubs: pubShare[i],
      pubsCount,
      sample: sample === 0 ? 0 : Math.round(sample * (subShare[i] + (pubsCount ? pubShare[i] : 0)) / (subs + (pubsCount ? pubs : 0))),
      roomSize,
      timeoutMs
    }), timeoutMs + 10_000)
    const usage = this.usage(started, this.snap())
    const failures = {}
    for (const r of results) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v
    const ready = results.reduce((a, r) => a + r.ready, 0)
    const sampled = results.reduce((a, r) => a + r.sampled, 0)
    return { ready, wanted: subs + pubs, failures, sampled, seconds: usage.wall, loadgenCpu: usage.loadgenCpu, serverCpu: usage.serverCpu }
  }

  /** CPU seconds of the server and of each worker, at a point in time. */
  snap () {
    const own = process.cpuUsage()
    return {
      t: performance.now(),
      server: cpuSeconds(this.proc.pid),
      workers: this.workers.map((w) => cpuSeconds(w.pid)),
      runner: (own.user + own.system) / 1e6,
      machine: machineBusySeconds()
    }
  }

  /** CPU use between two snaps: percentages of one core. */
  usage (a, b) {
    const wall = (b.t - a.t) / 1000
    const per = b.workers.map((x, i) => (x - a.workers[i]) / wall * 100)
    const loadgenSec = b.workers.reduce((sum, x, i) => sum + x - a.workers[i], 0)
    const ours = (b.server - a.server) + loadgenSec + (b.runner - a.runner)
    return {
      wall,
      serverCpuSec: b.server - a.server,
      serverCpu: (b.server - a.server) / wall * 100,
      loadgenCpu: per.reduce((x, y) => x + y, 0),
      loadgenMax: Math.max(...per),
      // Other processes on the machine during the window, % of one core.
      foreignCpu: Math.max(0, (b.machine - a.machine - ours) / wall * 100)
    }
  }

  rssKiB () {
    return statusKiB(this.proc.pid, 'VmRSS')
  }

  /** Sends a command line to the server and returns its answer. */
  async control (command) {
    this.proc.stdin.write(`${command}\n`)
    for (let i = 0; i < 10; i++) {
      const line = await this.proc.lines.next(30_000)
      if (line.startsWith(`${command} `)) return line.slice(command.length + 1)
    }
    throw new Error(`${this.server.label}: no answer to ${command}`)
  }

  async gc () {
    await this.control('gc')
    await sleep(200)
  }

  /**
   * Waits until the server and the load generator each use under `pct`% of a
   * core for two 250 ms periods in a row, then (within the run's budget) until
   * other processes on the machine use under CALM% of a core. Returns whether
   * our processes went quiet.
   */
  async quiet (timeoutMs = 30_000, pct = 5) {
    const end = Date.now() + timeoutMs
    let prev = this.snap()
    let calm = 0
    let ours = false
    while (Date.now() < end) {
      await sleep(250)
      const cur = this.snap()
      const u = this.usage(prev, cur)
      calm = u.serverCpu <= pct && u.loadgenMax <= pct ? calm + 1 : 0
      prev = cur
      if (calm >= 2) {
        ours = true
        break
      }
    }
    const started = Date.now()
    let logged = false
    while (calmBudgetMs - (Date.now() - started) > 0) {
      const a = this.snap()
      await sleep(250)
      const foreign = this.usage(a, this.snap()).foreignCpu
      if (foreign < CALM) break
      if (!logged) {
        log(`  other processes use ${fmtPct(foreign)} of a core: waiting for them (budget left ${Math.round(calmBudgetMs / 1000)} s)`)
        logged = true
      }
    }
    const waited = Date.now() - started
    calmBudgetMs -= waited
    calmWaitedMs += waited
    return ours
  }

  /** Worker counters, merged. */
  async stats () {
    const all = await this.all('stats')
    const hist = new Histogram()
    const merged = { received: 0, echoes: 0, errors: 0, other: 0, closes: {}, open: {} }
    for (const s of all) {
      for (const k of ['received', 'echoes', 'errors', 'other']) merged[k] += s[k]
      hist.merge(s.hist)
      for (const [group, codes] of Object.entries(s.closes)) {
        merged.closes[group] ??= {}
        for (const [code, n] of Object.entries(codes)) merged.closes[group][code] = (merged.closes[group][code] ?? 0) + n
      }
      for (const [group, n] of Object.entries(s.open)) merged.open[group] = (merged.open[group] ?? 0) + n
    }
    merged.hist = hist
    return merged
  }

  async stop () {
    await Promise.all(this.workers.map(async (w) => {
      if (w.connected) w.send({ cmd: 'exit' })
      await stopChild(w)
    }))
    await stopChild(this.proc)
  }
}

function closeCount (closes) {
  let n = 0
  for (const codes of Object.values(closes)) for (const v of Object.values(codes)) n += v
  return n
}

/** Closes in `after` that were not in `before`, by group and code. */
function closesSince (after, before) {
  const out = {}
  for (const [group, codes] of Object.entries(after)) {
    for (const [code, n] of Object.entries(codes)) {
      const d = n - (before[group]?.[code] ?? 0)
      if (d > 0) (out[group] ??= {})[code] = d
    }
  }
  return out
}

function describeCloses (closes) {
  const parts = []
  for (const [group, codes] of Object.entries(closes)) {
    const name = { sub: 'subscriber', pub: 'publisher', paused: 'slow subscriber' }[group] ?? group
    for (const [code, n] of Object.entries(codes)) parts.push(`${n} ${name}${n > 1 ? 's' : ''} closed ${code === '1006' ? 'without a close frame' : `with ${code}`}`)
  }
  return parts.join(', ')
}

/**
 * Publishes at `rate` msg/s per publisher for `durationMs`, then waits up to
 * `drainMs` for every delivery of what was sent. Counts are reset first, so
 * only messages of this window are counted (the previous one had drained).
 */
async function runLoad (rig, { rate, durationMs, receivers, drainMs = CFG.drainMs, watch, reconnect = false }) {
  await rig.all('reset')
  const closesBefore = (await rig.stats()).closes
  const before = rig.snap()
  const publishStarted = performance.now()
  let stoppedEarly = false
  const publishing = rig.all('publish', () => ({ rate, durationMs, reconnect }), durationMs + 30_000)
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
  const publishSeconds = stoppedEarly ? (performance.now() - publishStarted) / 1000 : durationMs / 1000
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

// -------------------------------------------------------------- scenarios ---

async function withRig (server, fn) {
  const rig = await Rig.start(server)
  try {
    return await fn(rig)
  } finally {
    await rig.stop()
  }
}

function log (...args) {
  console.error(`[${((Date.now() - runStarted) / 1000).toFixed(0).padStart(4)} s]`, ...args)
}

/** A rig with `subs` subscribers and one publisher, settled. */
async function rampRig (server, subs) {
  const rig = await Rig.start(server)
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

function judge (r) {
  const reasons = []
  if (r.sent < r.planned) reasons.push(`publisher sent ${r.sent}/${r.planned}`)
  if (r.lost > 0) reasons.push(`${fmtCount(r.lost)} of ${fmtCount(r.expected)} not delivered within ${CFG.drainMs / 1000} s`)
  if (r.lost < 0) reasons.push(`${fmtCount(-r.lost)} frames more than expected`)
  if (!(r.p99 < P99_LIMIT_MS)) reasons.push(`p99 ${fmtMs(r.p99)}`)
  if (r.newCloses > 0) reasons.push(describeCloses(r.stepCloses))
  if (r.errors > 0) reasons.push(`${r.errors} error frames`)
  return reasons
}

async function ramp (server, subs) {
  let rig = null
  let connectSeconds = null
  const steps = []
  const step = async (target) => {
    for (let attempt = 1; ; attempt++) {
      if (rig === null) {
        rig = await rampRig(server, subs)
        connectSeconds ??= rig.connectSeconds
      }
      const r = await runLoad(rig, { rate: target / subs, durationMs: CFG.stepMs, receivers: subs })
      r.target = target
      r.reasons = judge(r)
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
      if (r.pass || r.foreignCpu < DISTURBED || attempt > CFG.retries) {
        steps.push(r)
        return r
      }
      log(`  other processes took ${fmtPct(r.foreignCpu)} of a core during that step: repeating it`)
    }
  }
  try {
    let best = null
    let failed = null
    for (let target = CFG.rampStart; target <= CFG.rampMax; target *= CFG.rampFactor) {
      const r = await step(target)
      if (!r.pass) {
        failed = r
        break
      }
      best = r
    }
    for (let i = 0; i < CFG.refine && failed !== null && best !== null; i++) {
      const r = await step(Math.round(Math.sqrt(best.target * failed.target) / 1000) * 1000)
      if (r.pass) best = r
      else failed = r
    }
    return { subs, connectSeconds, steps, best, failed, capped: failed === null }
  } finally {
    await rig?.stop()
  }
}

/** Runs `measure` again (up to CFG.retries times) while other processes disturb it; keeps the least disturbed run. */
async function leastDisturbed (rig, label, measure) {
  let best = null
  for (let attempt = 1; attempt <= 1 + CFG.retries; attempt++) {
    const r = await measure()
    r.attempt = attempt
    if (best === null || r.foreignCpu < best.foreignCpu) best = r
    if (r.foreignCpu < DISTURBED) break
    if (attempt <= CFG.retries) {
      log(`  ${label}: other processes took ${fmtPct(r.foreignCpu)} of a core: repeating`)
      await rig.quiet(15_000)
    }
  }
  return best
}

async function fixedCpu (server) {
  return await withRig(server, async (rig) => {
    const conn = await rig.connect({ subs: CPU_SUBS, pubs: 1 })
    if (conn.ready !== conn.wanted) throw new Error(`${server.label}: ${conn.ready}/${conn.wanted} connected`)
    await rig.quiet(60_000)
    const r = await leastDisturbed(rig, server.label, () => runLoad(rig, { rate: CPU_RATE / CPU_SUBS, durationMs: CFG.cpuMs, receivers: CPU_SUBS }))
    r.usPerDelivery = r.received > 0 ? r.serverCpuSec * 1e6 / r.received : NaN
    r.reasons = judge(r)
    log(`  ${server.label}: ${fmtUs(r.usPerDelivery)} per delivery, server ${fmtPct(r.serverCpu)}, p99 ${fmtMs(r.p99)}, loadgen ${fmtPct(r.loadgenCpu)}`)
    return r
  })
}

async function chatty (server) {
  return await withRig(server, async (rig) => {
    const conn = await rig.connect({ subs: CHATTY.clients - CHATTY.publishers, pubs: CHATTY.publishers, pubsCount: true })
    if (conn.ready !== conn.wanted) throw new Error(`${server.label}: ${conn.ready}/${conn.wanted} connected`)
    await rig.quiet(60_000)
    const r = await leastDisturbed(rig, server.label, () => runLoad(rig, { rate: CHATTY.rate / CHATTY.publishers, durationMs: CFG.chattyMs, receivers: CHATTY.clients }))
    r.reasons = judge(r)
    log(`  ${server.label}: p50 ${fmtMs(r.p50)}, p99 ${fmtMs(r.p99)}, server ${fmtPct(r.serverCpu)}, loadgen ${fmtPct(r.loadgenCpu)}`)
    return r
  })
}

async function idle (server) {
  return await withRig(server, async (rig) => {
    const roomSize = server.kind === 'chat' ? IDLE_ROOM : 0
    const half = Math.floor(CFG.idle / 2)
    await rig.quiet(10_000)
    await rig.gc()
    const before = rig.rssKiB()
    const first = await rig.connect({ subs: half, sample: 0, roomSize })
    await rig.quiet(120_000)
    await rig.gc()
    const mid = rig.rssKiB()
    const second = await rig.connect({ subs: CFG.idle - half, sample: 0, roomSize })
    const settled = await rig.quiet(120_000)
    await rig.gc()
    const after = rig.rssKiB()
    const open = first.ready + second.ready
    const r = {
      wanted: CFG.idle,
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
      // The second half's cost alone: what one more connection adds, without
      // the one-time growth (young generation, compiled code) the first
      // connections bring about whatever they hold.
      marginalKiB: second.ready > 0 ? (after - mid) / second.ready : NaN
    }
    log(`  ${server.label}: ${open} open in ${r.connectSeconds.toFixed(1)} s, ${r.perConnKiB.toFixed(1)} KiB each, ${r.marginalKiB.toFixed(1)} KiB each of the second half`)
    return r
  })
}

async function overload (server, maxRate) {
  return await withRig(server, async (rig) => {
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
      durationMs: CFG.overloadMaxMs,
      receivers: OVERLOAD.subs - OVERLOAD.slow,
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
        return elapsed >= CFG.overloadMs && resumedAtMs !== null
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

// ------------------------------------------------------------- formatting ---

function fmtCount (n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–'
}

function fmtRate (n) {
  if (!Number.isFinite(n)) return '–'
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 1 : 2)}M/s`
  if (n >= 1e3) return `${Math.round(n / 1e3)}k/s`
  return `${Math.round(n)}/s`
}

function fmtNum (n) {
  return fmtRate(n).replace('/s', '')
}

function fmtMs (n) {
  if (!Number.isFinite(n)) return '–'
  return n >= 100 ? `${Math.round(n)} ms` : n >= 10 ? `${n.toFixed(1)} ms` : `${n.toFixed(2)} ms`
}

function fmtUs (n) {
  return Number.isFinite(n) ? `${n.toFixed(2)} µs` : '–'
}

function fmtPct (n) {
  return Number.isFinite(n) ? `${Math.round(n)}%` : '–'
}

function fmtKiB (kib) {
  return Number.isFinite(kib) ? `${kib.toFixed(1)} KiB` : '–'
}

function fmtMiB (kib) {
  return Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MiB` : '–'
}

function fmtRatio (x, base) {
  if (!Number.isFinite(x) || !Number.isFinite(base) || base === 0) return '–'
  const r = x / base
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`
}

function table (header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n')
}

/**
 * Rows of one metric per line, a column per server, then the ratio of each
 * non-naive server to the naive loop. `metrics` are [label, value(result), format].
 */
function sideBySide (first, results, servers, metrics) {
  const others = servers.filter((s) => s.id !== 'naive')
  const hasNaive = servers.some((s) => s.id === 'naive')
  const header = [first, ...servers.map((s) => s.label), ...(hasNaive ? others.map((s) => `${s.label} ÷ naive`) : [])]
  const rows = metrics.map(([label, value, format, ratio = true]) => {
    const v = (s) => (results[s.id] === undefined ? NaN : value(results[s.id]))
    return [
      label,
      ...servers.map((s) => (results[s.id] === undefined ? 'failed' : format(v(s), results[s.id]))),
      ...(hasNaive ? others.map((s) => (ratio ? fmtRatio(v(s), v({ id: 'naive' })) : '')) : [])
    ]
  })
  return table(header, rows)
}

// ------------------------------------------------------------------ main ---

const machine = {}

function versionOf (pkg) {
  try {
    return JSON.parse(readFileSync(join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version
  } catch {
    return '?'
  }
}

function machineSection () {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? '?'
  const own = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version
  return [
    `- Machine: ${cpu}, ${cores} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}`,
    `- Node ${process.version}; fastify-chat ${own}, fastify ${versionOf('fastify')}, @fastify/websocket ${versionOf('@fastify/websocket')}, ws ${versionOf('ws')}, socket.io ${versionOf('socket.io')} (engine.io ${versionOf('engine.io')})`,
    pinned
      ? `- Pinning: yes (taskset): each server on core ${SERVER_CPUS}, the load generator (${workersWanted} process${workersWanted > 1 ? 'es' : ''}) on core${LOADGEN_CPUS.includes('-') ? 's' : ''} ${LOADGEN_CPUS}`
      : `- Pinning: no (taskset ${tasksetWorks() ? 'works but there is only one core' : 'not available'}); server and load generator share the cores`,
    `- Open-file limit: server ${machine.serverFdLimit ?? '?'}, load generator ${machine.loadgenFdLimit ?? '?'}`,
    `- Mode: ${QUICK ? 'quick (`npm run bench -- --quick`)' : 'full (`npm run bench`)'}, ${new Date(runStarted).toISOString()}`
  ].join('\n')
}

const out = []
const emit = (text = '') => {
  out.push(text)
  console.log(text)
}

const results = { ramp: {}, cpu: {}, chatty: {}, idle: {}, overload: null }
const failures = []

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/**
 * Measures every server CFG.rounds times, the servers taking turns, and
 * keeps the median of each figure in `keys` (the rest from the run at the
 * median of the first). Server CPU moves by several percent between runs of
 * the same code, which one run per server cannot tell from a difference.
 */
async function inRounds (scenario, servers, measure, keys) {
  const runs = {}
  for (let round = 1; round <= CFG.rounds; round++) {
    for (const server of servers) {
      log(`${scenario}: ${server.label}${CFG.rounds > 1 ? `, round ${round} of ${CFG.rounds}` : ''}`)
      const r = await attempt(`${scenario} ${server.label}`, () => measure(server))
      if (r !== undefined) (runs[server.id] ??= []).push(r)
    }
  }
  const merged = {}
  for (const [id, list] of Object.entries(runs)) {
    const middle = [...list].sort((a, b) => a[keys[0]] - b[keys[0]])[(list.length - 1) >> 1]
    merged[id] = { ...middle, rounds: list.map((r) => r[keys[0]]) }
    for (const key of keys) merged[id][key] = median(list.map((r) => r[key]))
  }
  return merged
}

async function attempt (what, fn) {
  try {
    return await fn()
  } catch (err) {
    failures.push(`${what}: ${err.message}`)
    log(`${what} failed: ${err.message}`)
    return undefined
  }
}

log(`fastify-chat benchmark (${QUICK ? 'quick' : 'full'}); servers: ${SERVERS.map((s) => s.label).join(', ')}; ` +
  `pinning ${pinned ? 'on' : 'off'}; ${workersWanted} load generator process(es)` +
  (hasSqlite ? '' : '; sqliteStore is not exported by dist/index.js, so no SQLite column'))

if (SCENARIOS.includes('ramp')) {
  for (const server of serversFor('ramp')) {
    results.ramp[server.id] = {}
    for (const subs of CFG.rampSizes) {
      log(`ramp: ${server.label}, ${subs} subscribers`)
      results.ramp[server.id][subs] = await attempt(`ramp ${server.label} ${subs}`, () => ramp(server, subs))
    }
  }
}
if (SCENARIOS.includes('cpu')) {
  results.cpu = await inRounds(`cpu at ${fmtNum(CPU_RATE)} deliveries/s`, serversFor('cpu'), fixedCpu,
    ['usPerDelivery', 'serverCpu', 'p50', 'p99', 'loadgenCpu', 'foreignCpu'])
}
if (SCENARIOS.includes('chatty')) {
  results.chatty = await inRounds('chatty room', serversFor('chatty'), chatty,
    ['serverCpu', 'p50', 'p99', 'loadgenCpu', 'foreignCpu'])
}
if (SCENARIOS.includes('idle')) {
  for (const server of serversFor('idle')) {
    log(`idle ${CFG.idle}: ${server.label}`)
    results.idle[server.id] = await attempt(`idle ${server.label}`, () => idle(server))
  }
}
const chatServer = SERVERS.find((s) => s.id === 'chat')
if (SCENARIOS.includes('overload') && chatServer !== undefined) {
  const measured = results.ramp.chat?.[OVERLOAD.subs]?.best?.deliveriesPerSec
  const maxRate = measured ?? 500_000
  log(`overload: fastify-chat at 2 × ${fmtRate(maxRate)}${measured === undefined ? ' (no ramp result for 1000 subscribers: assumed)' : ''}`)
  results.overload = await attempt('overload', () => overload(chatServer, maxRate))
  if (results.overload !== undefined && results.overload !== null) results.overload.maxMeasured = measured !== undefined
}

// Stand-alone scenarios, each a script that prints its own Markdown table.
const extras = [
  { script: 'store.mjs', title: 'History store (bench/store.mjs)' },
  { script: 'redis.mjs', title: 'Across instances through Redis (bench/redis.mjs)' }
]
let storeSeconds = null
for (const extra of extras) {
  const script = join(here, extra.script)
  if (!existsSync(script)) continue
  log(`${extra.script}: node bench/${extra.script}${QUICK ? ' --quick' : ''}`)
  const started = Date.now()
  extra.output = await runExtra(script, extra.script)
  storeSeconds = (storeSeconds ?? 0) + (Date.now() - started) / 1000
}

function runExtra (script, name) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...(QUICK ? ['--quick'] : [])], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    child.stdout.on('data', (chunk) => { text += chunk })
    const timer = setTimeout(() => child.kill('SIGKILL'), CFG.storeTimeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve(text.trim())
      else resolve(`${text.trim()}\n\n_bench/${name} ${signal === null ? `exited with ${code}` : `was stopped (${signal}) after ${CFG.storeTimeoutMs / 1000} s`}._`.trim())
    })
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve(`_bench/${name} could not run: ${err.message}_`)
    })
  })
}

// --------------------------------------------------------------- report ---

const totalSeconds = (Date.now() - runStarted) / 1000
emit('# fastify-chat benchmark')
emit()
emit(machineSection())
emit(`- Run time: ${totalSeconds.toFixed(0)} s${storeSeconds === null ? '' : ` (of which bench/store.mjs and bench/redis.mjs ${storeSeconds.toFixed(0)} s)`}`)
emit(`- Other load: before each measurement the run waits (up to ${Math.round(CFG.calmBudgetMs / 1000)} s in all; it waited ` +
  `${Math.round(calmWaitedMs / 1000)} s) for other processes to use under ${CALM}% of a core, and repeats a failed or measured ` +
  `run (up to ${CFG.retries}×) when they took over ${DISTURBED}%; "others" below is the CPU they took during the reported run` +
  (NICE === 0 ? '.' : `. Servers and load generators ran at nice ${NICE}.`))
emit()
emit('Every server runs in a fresh process per scenario. Clients are raw TCP WebSocket clients in a separate load ' +
  `generator process, over loopback; ${SAMPLED} subscribers per run decode each payload for latency (now − the ` +
  'scheduled send time it carries), the others only count frames. Messages are 64-byte texts sent open-loop ' +
  '(catch-up timer, so a late sender bursts rather than slows down). Ratios are to the naive loop.')

if (SCENARIOS.includes('ramp')) {
  const servers = serversFor('ramp')
  emit()
  emit('## Fan-out ramp: max deliveries/s')
  emit()
  const rows = CFG.rampSizes.map((subs) => {
    const r = Object.fromEntries(servers.map((s) => [s.id, results.ramp[s.id]?.[subs]]))
    const value = (x) => x?.best?.deliveriesPerSec ?? NaN
    const cell = (x) => {
      if (x === undefined) return 'failed'
      if (x.best === null) return `< ${fmtRate(CFG.rampStart)}`
      const busy = x.best.loadgenMax >= LOADGEN_BUSY ? ' †' : ''
      return `${x.capped ? '≥ ' : ''}${fmtRate(x.best.deliveriesPerSec)}${busy}`
    }
    const others = servers.filter((s) => s.id !== 'naive')
    return [fmtCount(subs), ...servers.map((s) => cell(r[s.id])),
      ...(servers.some((s) => s.id === 'naive') ? others.map((s) => fmtRatio(value(r[s.id]), value(r.naive))) : [])]
  })
  const others = servers.filter((s) => s.id !== 'naive')
  emit(table(['Subscribers', ...servers.map((s) => s.label), ...(servers.some((s) => s.id === 'naive') ? others.map((s) => `${s.label} ÷ naive`) : [])], rows))
  emit()
  emit(`One publisher; rate steps ${CFG.rampFactor === 2 ? 'double' : `grow ${CFG.rampFactor}×`} from ${fmtNum(CFG.rampStart)} deliveries/s` +
    (CFG.refine > 0 ? `, then ${CFG.refine} bisection steps between the last passing and the first failing one` : '') +
    `; ${CFG.stepMs / 1000} s per step. A step passes when every message sent in it reached every subscriber ` +
    `within ${CFG.drainMs / 1000} s after the step, p99 latency < ${P99_LIMIT_MS} ms, and no socket closed. ` +
    '"max" is the delivery rate of the highest passing step. † the load generator was at ≥ ' +
    `${LOADGEN_BUSY}% of its core at that step, so the number may be its limit rather than the server's.`)
  emit()
  emit('Ramp details:')
  emit()
  const detail = []
  for (const s of servers) {
    for (const subs of CFG.rampSizes) {
      const x = results.ramp[s.id]?.[subs]
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
        x.failed === null ? `none up to ${fmtRate(CFG.rampMax)}` : fmtRate(x.failed.target),
        x.failed === null ? '' : `${x.failed.reasons.join('; ')} (loadgen ${fmtPct(x.failed.loadgenCpu)}, others ${fmtPct(x.failed.foreignCpu)})`
      ])
    }
  }
  emit(table(['Server', 'Subscribers', 'Connect', 'Max', 'p50 / p99 at max', 'Server CPU at max', 'Loadgen CPU at max', 'Others at max', 'First failing step', 'Why it failed'], detail))
}

/** The first figure of every round, when there were several. */
function roundsRow (format) {
  return CFG.rounds > 1 ? [['Each round', (r) => r.rounds, format, false]] : []
}

function roundsNote () {
  return CFG.rounds > 1 ? ` Each figure is the median of ${CFG.rounds} runs per server, the servers taking turns.` : ''
}

const cpuServers = serversFor('cpu')
if (SCENARIOS.includes('cpu')) {
  emit()
  emit(`## Server CPU per delivery at ${fmtNum(CPU_RATE)} deliveries/s, ${fmtCount(CPU_SUBS)} subscribers`)
  emit()
  emit(sideBySide('', results.cpu, cpuServers, [
    ['Server CPU per delivery', (r) => r.usPerDelivery, fmtUs],
    ...roundsRow((r) => r.map(fmtUs).join(', ')),
    ['Server CPU (% of one core)', (r) => r.serverCpu, fmtPct],
    ['Deliveries/s achieved', (r) => r.deliveriesPerSec, fmtRate, false],
    ['Latency p50', (r) => r.p50, fmtMs],
    ['Latency p99', (r) => r.p99, fmtMs],
    ['Not delivered', (r) => r.lost, fmtCount, false],
    ['Load generator CPU (% of one core)', (r) => r.loadgenCpu, fmtPct, false],
    ['Other processes (% of one core)', (r) => r.foreignCpu, fmtPct, false]
  ]))
  emit()
  emit(`One publisher at ${fmtCount(CPU_RATE / CPU_SUBS)} msg/s for ${CFG.cpuMs / 1000} s, the same load for every server. ` +
    'CPU is utime + stime of the server process from /proc over the window (publishing and the drain after it), ' +
    'divided by the deliveries counted.' + roundsNote() +
    (cpuServers.some((s) => s.id === 'floor')
      ? ' The floor is not a chat server: it wraps each message in an envelope of fastify-chat\'s shape and size, frames it ' +
        'once and writes it to the stream under every socket with no check of any kind (bench/servers/floor.mjs). What it ' +
        'spends per delivery is the write itself: the least any server that writes each delivery can spend here.'
      : '') + problems(results.cpu, cpuServers))
}

const chattyServers = serversFor('chatty')
if (SCENARIOS.includes('chatty')) {
  emit()
  emit(`## Chatty room: ${CHATTY.clients} clients, ${CHATTY.publishers} of them publishing, ${fmtCount(CHATTY.rate)} msg/s in all`)
  emit()
  emit(sideBySide('', results.chatty, chattyServers, [
    ['Latency p50', (r) => r.p50, fmtMs],
    ['Latency p99', (r) => r.p99, fmtMs],
    ['Server CPU (% of one core)', (r) => r.serverCpu, fmtPct],
    ...roundsRow((r) => r.map(fmtPct).join(', ')),
    ['Deliveries/s', (r) => r.deliveriesPerSec, fmtRate, false],
    ['Not delivered', (r) => r.lost, fmtCount, false],
    ['Load generator CPU (% of one core)', (r) => r.loadgenCpu, fmtPct, false],
    ['Other processes (% of one core)', (r) => r.foreignCpu, fmtPct, false]
  ]))
  emit()
  emit(`Each publisher sends ${CHATTY.rate / CHATTY.publishers} msg/s for ${CFG.chattyMs / 1000} s; every message goes to all ` +
    `${CHATTY.clients} clients, its sender included (${fmtRate(CHATTY.rate * CHATTY.clients)} deliveries).` + roundsNote() +
    problems(results.chatty, chattyServers))
}

const idleServers = serversFor('idle')
if (SCENARIOS.includes('idle')) {
  emit()
  emit(`## Idle: memory per open connection at ${fmtCount(CFG.idle)} connections`)
  emit()
  emit(sideBySide('', results.idle, idleServers, [
    ['Connections open', (r) => r.open, fmtCount, false],
    ['Server RSS before', (r) => r.beforeKiB, fmtMiB],
    ['Server RSS with the connections open', (r) => r.afterKiB, fmtMiB],
    ['Memory per connection', (r) => r.perConnKiB, fmtKiB],
    [`Memory per connection of the second ${fmtCount(CFG.idle - Math.floor(CFG.idle / 2))}`, (r) => r.marginalKiB, fmtKiB],
    ['Time to open them all', (r) => r.connectSeconds, (v) => `${v.toFixed(1)} s`],
    ['Server CPU while connecting (% of one core)', (r) => r.serverCpu, fmtPct],
    ['Load generator CPU while connecting (% of one core)', (r) => r.loadgenCpu, fmtPct, false]
  ]))
  emit()
  emit('RSS (VmRSS) after a forced GC in the server, before any connection and once all are open and the server ' +
    'is idle again; the difference divided by the connections. The connections open in two halves, with the same ' +
    'measure after the first: the second half\'s growth per connection is what one more idle connection costs, ' +
    'without the one-time growth of the heap\'s young generation and compiled code that the first ones bring. The naive loop and Socket.IO hold every socket in ' +
    `one broadcast set; fastify-chat sockets join rooms of ${IDLE_ROOM} (\`?room=\`), so they hold presence too. ` +
    'Not one room: each join sends a presence event to every member and a `joined` frame listing every user, so ' +
    'filling one room costs O(n²) (see the Connect column of the ramp details).' + problems(results.idle, idleServers))
}

if (SCENARIOS.includes('overload') && chatServer !== undefined) {
  emit()
  emit(`## Overload (fastify-chat only): 2 × max rate, ${fmtCount(OVERLOAD.subs)} subscribers, ${OVERLOAD.slow} of which stop reading`)
  emit()
  const o = results.overload
  if (o === undefined || o === null) {
    emit('_Did not run; see the errors below._')
  } else {
    const groupCloses = (group) => {
      const codes = o.after.closes[group] ?? {}
      const n = Object.values(codes).reduce((a, b) => a + b, 0)
      if (n === 0) return '0'
      return `${n} (${Object.entries(codes).map(([code, k]) => `${k} × ${code === '1006' ? 'no close frame' : code}`).join(', ')})`
    }
    emit(table(['Measure', 'Value'], [
      ['Offered rate', `${fmtNum(o.target)} deliveries/s (${fmtCount(o.rate)} msg/s)${o.maxMeasured ? '' : ', assumed max'}, for ${o.publishSeconds.toFixed(1)} s`],
      ['Every slow subscriber closed by the server after', o.slowClosedAtMs === null ? `not within ${CFG.overloadMaxMs / 1000} s` : `${(o.slowClosedAtMs / 1000).toFixed(1)} s`],
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
    ]))
    emit()
    emit('The slow subscribers pause their sockets before publishing starts. Publishing lasts at least ' +
      `${CFG.overloadMs / 1000} s and, until the server has closed all ${OVERLOAD.slow} slow ones (its \`slow_consumer\` ` +
      `count, polled every 250 ms), up to ${CFG.overloadMaxMs / 1000} s: a paused socket first fills the kernel buffers, ` +
      'then `maxBufferedBytes` (default 1 MiB). Once that count is reached the slow ones read again, so a close code ' +
      'above is the one in the close frame they read; "no close frame" means the connection ended without one (the ' +
      'server terminated it after `closeTimeout`, 2 s, with the close frame still queued behind the unread data). ' +
      'RSS is the server\'s VmRSS. When the server reads the publisher slower than it sends, it stops reading that ' +
      'socket (64 frames waiting) until it catches up, so TCP pushes back on the publisher; when over an eighth of ' +
      'the room falls behind, new messages are refused with an `overloaded` error frame instead of being sent. ' +
      '"Sent" counts what the publisher wrote, so a refused message shows as not delivered.')
  }
}

emit()
emit('## Settings')
emit()
emit('- fastify-chat runs with `rateLimit: false`: the publishers here send up to thousands of messages per second ' +
  'on one socket, far past the default per-connection limit (10 msg/s, burst 20). Also `heartbeatInterval: 0`, ' +
  '`maxConnections: 100000`, `defaultRoom: \'bench\'`, `historySize: 100`, everything else default ' +
  '(`maxBufferedBytes` 1 MiB, `echo` on).' + (hasSqlite ? ' The SQLite column uses `sqliteStore` on a temporary file.' : ''))
emit('- The naive loop is @fastify/websocket with a Set of sockets and `for (const c of clients) c.send(msg)` per message; ' +
  'Socket.IO is `io.emit(\'m\', p)` per message, WebSocket transport only. Both send to the sender as well, as fastify-chat does.')
if (SCENARIOS.includes('cpu') && cpuServers.some((s) => s.id === 'floor')) {
  emit('- The floor (CPU scenario only) writes each message, in an envelope of fastify-chat\'s shape and size, framed once, ' +
    'to the stream under every socket with no check at all: a measure of the write alone, not a server to deploy.')
}
if (!hasSqlite) emit('- `sqliteStore` is not exported by dist/index.js yet, so there is no SQLite column.')

for (const extra of extras) {
  if (extra.output === undefined) continue
  emit()
  emit(`## ${extra.title}`)
  emit()
  emit(extra.output)
}

if (failures.length > 0) {
  emit()
  emit('## Errors')
  emit()
  for (const f of failures) emit(`- ${f}`)
}

writeFileSync(OUT, out.join('\n') + '\n')
log(`written to ${OUT}`)
killAll()
process.exit(failures.length > 0 ? 1 : 0)

/** A note on runs that lost messages, closed sockets or saw errors. */
function problems (byServer, servers) {
  const notes = []
  for (const s of servers) {
    const r = byServer[s.id]
    if (r?.reasons?.length > 0) notes.push(`${s.label}: ${r.reasons.join('; ')}`)
    if (r?.failures !== undefined && Object.keys(r.failures).length > 0) notes.push(`${s.label}: connect failures ${JSON.stringify(r.failures)}`)
  }
  return notes.length === 0 ? '' : ` Problems: ${notes.join('. ')}.`
}
