// One server process and its load generator processes, for one scenario:
// starting and stopping them, spreading work over the generators, and
// measuring CPU and memory from /proc.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Histogram } from './histogram.mjs'
import { LoadgenProcess } from './loadgen-process.mjs'
import { cpuSeconds, machineBusySeconds, openFilesLimit, spawnNode, statusKiB, stopChild } from './proc.mjs'
import { SAMPLED } from './settings.mjs'

const SERVERS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'servers')

/** Starts a rig for `server`, runs `fn(rig)` and stops the rig whatever happens. */
export async function withRig (bench, server, fn) {
  const rig = await Rig.start(bench, server)
  try {
    return await fn(rig)
  } finally {
    await rig.stop()
  }
}

export class Rig {
  /**
   * `bench.placement` says where processes run ({ serverCpus, loadgenCpus,
   * nice, cpuProf, workers }); the first rig records the open-file limits
   * its processes got in `bench.machine`.
   */
  static async start (bench, server) {
    const rig = new Rig()
    const { serverCpus, loadgenCpus, nice, cpuProf, workers } = bench.placement
    rig.server = server
    rig.calm = bench.calm
    const profile = cpuProf === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`]
    rig.proc = spawnNode(['--expose-gc', ...profile, join(SERVERS_DIR, server.file)], {
      cpus: serverCpus,
      nice,
      env: { ...process.env, ...server.env }
    })
    const port = Number(await rig.proc.lines.next(30_000))
    if (!Number.isInteger(port) || port <= 0) throw new Error(`${server.label}: no port on stdout`)
    rig.port = port
    rig.workers = []
    for (let i = 0; i < workers; i++) rig.workers.push(new LoadgenProcess({ cpus: loadgenCpus, nice }))
    bench.machine.serverFdLimit ??= openFilesLimit(rig.proc.pid)
    bench.machine.loadgenFdLimit ??= openFilesLimit(rig.workers[0].pid)
    return rig
  }

  /** Runs a command on every worker; `perWorker(i)` gives each its own arguments. */
  all (cmd, perWorker = () => ({}), timeoutMs) {
    return Promise.all(this.workers.map((w, i) => w.call(cmd, perWorker(i), timeoutMs)))
  }

  /** Splits `n` over the workers: worker i gets share(n)[i]. */
  share (n) {
    const w = this.workers.length
    return this.workers.map((_, i) => Math.floor(n / w) + (i < n % w ? 1 : 0))
  }

  /**
   * Opens `subs` subscribers (and `pubs` publishers) spread over the workers.
   * `room` puts every fastify-chat socket in that one room; `concurrency` is
   * how many connect at once over all the workers (default 200 per worker).
   */
  async connect ({ subs, pubs = 0, pubsCount = false, sample = SAMPLED, roomSize = 0, room = null, concurrency = null }) {
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
      room,
      ...(concurrency === null ? {} : { concurrency: Math.max(1, this.share(concurrency)[i]) }),
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

  /** The server's highest RSS so far (VmHWM). */
  peakRssKiB () {
    return statusKiB(this.proc.pid, 'VmHWM')
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

  /** Collects garbage in the server; returns its V8 heap then, in KiB (`heapKiB`, `externalKiB`). */
  async gc () {
    const [, heapUsed, external] = (await this.control('gc')).split(' ')
    await sleep(200)
    return { heapKiB: Number(heapUsed) / 1024, externalKiB: Number(external) / 1024 }
  }

  /**
   * Waits until the server and the load generator each use under `pct`% of a
   * core for two 250 ms periods in a row, then (within the run's budget) until
   * other processes on the machine calm down too. Returns whether our
   * processes went quiet.
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
    await this.calm.wait(this)
    return ours
  }

  /** Worker counters, merged. */
  async stats () {
    const all = await this.all('stats')
    const hist = new Histogram()
    const merged = { received: 0, echoes: 0, errors: 0, other: 0, bytes: 0, closes: {}, open: {} }
    for (const s of all) {
      for (const k of ['received', 'echoes', 'errors', 'other', 'bytes']) merged[k] += s[k]
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
    await Promise.all(this.workers.map((w) => w.stop()))
    await stopChild(this.proc)
  }
}
