// A reconnect storm: a room full of clients, a publisher sending with cids,
// and the server killed (SIGKILL: a crash, so no close frame and nothing
// flushed on the way out) then started again on the same port and, for
// fastify-chat, the same SQLite file. Every client then reconnects at once,
// fastify-chat's with `?resume=` and `?since=` (its epoch and last offset).
// The naive loop gets the same restart and the same publisher (it broadcasts
// what the publisher sends, to whoever is back), so both servers carry the
// same traffic while their clients come back; it keeps no history, so only
// its reconnect time is compared.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { fmtCount, fmtPct, problems, sideBySide } from '../lib/format.mjs'
import { LoadgenProcess } from '../lib/loadgen-process.mjs'
import { log } from '../lib/log.mjs'
import { cpuSeconds, listenDrops, openFilesLimit, spawnNode, statusKiB, stopChild } from '../lib/proc.mjs'
import { attempt } from '../lib/rounds.mjs'

const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')
const CLIENTS = join(BENCH_DIR, 'storm-clients.mjs')
const ROOM = 'storm'
const AT_ONCE = 50 // while the room fills
const BACKLOG = 4096
const REJOIN_TIMEOUT_MS = 120_000
const DRAIN_MS = 10_000
const REPLAY_SECONDS = 30
// Issue 16: every client recovered, and all rejoined within 3× the naive loop's time.
const TIME_TARGET = 3

/** results[server id] = that server's storm. */
export async function run (bench, servers) {
  const results = {}
  for (const server of servers) {
    log(`storm, ${fmtCount(bench.cfg.storm.clients)} clients: ${server.label}`)
    results[server.id] = await attempt(bench, `storm ${server.label}`, () => storm(bench, server))
  }
  return results
}

/**
 * The store's `historySize` for a publisher at `rate`: a client may come back
 * up to REPLAY_SECONDS of messages behind and still recover. With the default
 * of 100, at 200 msg/s every client not back within half a second of the
 * publisher would get `recovered: false` by configuration, not by fault.
 */
function replayWindow (rate) {
  return Math.max(100, Math.ceil(rate * REPLAY_SECONDS))
}

/** Splits `n` over `k` parts as evenly as it goes. */
function split (n, k) {
  return Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0))
}

async function startServer (bench, server, env) {
  const { serverCpus, nice, cpuProf } = bench.placement
  const profile = cpuProf === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`]
  const proc = spawnNode(['--expose-gc', ...profile, join(BENCH_DIR, 'servers', server.file)], { cpus: serverCpus, nice, env })
  const port = Number(await proc.lines.next(30_000))
  if (!Number.isInteger(port) || port <= 0) throw new Error(`${server.label}: no port on stdout`)
  return { proc, port }
}

/** Polls `check()` every 100 ms until it is true or `timeoutMs` passed; returns whether it became true. */
async function until (check, timeoutMs) {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check()) return true
    await sleep(100)
  }
  return false
}

async function storm (bench, server) {
  const { clients, rate, beforeMs, afterMs, spreadMs } = bench.cfg.storm
  const chat = server.kind === 'chat'
  const dir = mkdtempSync(join(tmpdir(), 'fastify-chat-storm-'))
  const env = { ...process.env, ...server.env, LISTEN_BACKLOG: String(BACKLOG) }
  if (chat) Object.assign(env, { CHAT_STORE: 'sqlite', CHAT_DB: join(dir, 'storm.db'), CHAT_STORE_HISTORY: String(replayWindow(rate)) })
  let { proc, port } = await startServer(bench, server, env)
  const { loadgenCpus, nice, workers: n } = bench.placement
  const workers = Array.from({ length: Math.max(1, n) }, () => new LoadgenProcess({ cpus: loadgenCpus, nice, script: CLIENTS }))
  bench.machine.serverFdLimit ??= openFilesLimit(proc.pid)
  bench.machine.loadgenFdLimit ??= openFilesLimit(workers[0].pid)
  const all = (cmd, perWorker = () => ({}), timeoutMs) => Promise.all(workers.map((w, i) => w.call(cmd, perWorker(i), timeoutMs)))
  try {
    const shares = split(clients, workers.length)
    const lanes = split(AT_ONCE, workers.length)
    const fillTimeout = 60_000 + clients * 80
    const filled = await all('connect', (i) => ({ port, kind: server.kind, count: shares[i], room: ROOM, concurrency: Math.max(1, lanes[i]), timeoutMs: fillTimeout }), fillTimeout + 10_000)
    const inRoom = filled.reduce((a, r) => a + r.ready, 0)
    log(`  ${server.label}: ${inRoom}/${clients} in the room`)
    if (inRoom !== clients) throw new Error(`${inRoom} of ${clients} joined: ${JSON.stringify(filled.map((r) => r.failures))}`)

    await workers[0].call('publisher', { port, room: ROOM })
    await workers[0].call('publish', { rate })
    await sleep(beforeMs)
    const peakBeforeKiB = statusKiB(proc.pid, 'VmHWM')
    proc.kill('SIGKILL')
    await stopChild(proc, 5000)
    const everyoneOut = await until(async () => (await all('closed')).reduce((a, x) => a + x, 0) === clients + 1, 30_000)
    if (!everyoneOut) throw new Error('clients did not see the server go within 30 s')

    ;({ proc, port } = await startServer(bench, server, { ...env, LISTEN_PORT: String(port) }))
    const cpuStart = cpuSeconds(proc.pid)
    const loadgenStart = workers.map((w) => cpuSeconds(w.pid))
    const dropsBefore = listenDrops()
    const started = performance.now()
    const rejoins = await all('rejoin', () => ({ timeoutMs: REJOIN_TIMEOUT_MS, spreadMs }), REJOIN_TIMEOUT_MS + 10_000)
    const wallSeconds = (performance.now() - started) / 1000
    const rejoinCpuSec = cpuSeconds(proc.pid) - cpuStart
    const dropsAfter = listenDrops()
    const listenDropped = dropsBefore === null || dropsAfter === null ? NaN : dropsAfter.drops - dropsBefore.drops
    // The busiest load generator, % of one core: near 100, the clients and not the server set the pace.
    const loadgenCpu = Math.max(...workers.map((w, i) => (cpuSeconds(w.pid) - loadgenStart[i]) / wallSeconds * 100))
    const sum = (key) => rejoins.reduce((a, r) => a + r[key], 0)
    const r = {
      clients,
      rejoined: sum('rejoined'),
      retried: sum('retried'),
      recovered: chat ? sum('recovered') : NaN,
      idsKept: chat ? sum('idsKept') : NaN,
      rejoinSeconds: Math.max(...rejoins.map((x) => x.lastMs)) / 1000,
      wallSeconds,
      rejoinCpuSec,
      loadgenCpu,
      listenDropped,
      peakBeforeKiB,
      reasons: []
    }
    log(`  ${server.label}: ${r.rejoined}/${clients} back in ${r.rejoinSeconds.toFixed(2)} s (${r.retried} retried), ` +
      `server CPU ${rejoinCpuSec.toFixed(2)} s, load generator ${fmtPct(loadgenCpu)}, ${listenDropped} listen drops` + (chat ? `, ${r.recovered} recovered, ${r.idsKept} kept their id` : ''))

    await sleep(afterMs)
    const published = await workers[0].call('stop')
    if (chat) {
      const last = published.acked.reduce((a, x) => Math.max(a, x), 0)
      const drained = await until(async () => (await all('caughtUp', () => ({ offset: last }))).reduce((a, x) => a + x, 0) === clients, DRAIN_MS)
      const checks = await all('verify', () => ({ acked: published.acked }), 60_000)
      const vsum = (key) => checks.reduce((a, c) => a + c[key], 0)
      Object.assign(r, {
        sent: published.sent,
        skipped: published.skipped,
        acked: published.acked.length,
        clean: vsum('clean'),
        withMissing: vsum('withMissing'),
        missing: vsum('missing'),
        withDuplicates: vsum('withDuplicates'),
        duplicates: vsum('duplicates'),
        drained
      })
      if (!drained) r.reasons.push(`not every client had offset ${last} within ${DRAIN_MS / 1000} s of the last send`)
      if (r.recovered < clients) r.reasons.push(`${clients - r.recovered} of ${clients} not recovered`)
      log(`  ${server.label}: ${r.acked} of ${r.sent} sent acknowledged (${r.skipped} skipped while down); ${r.clean}/${clients} clients ` +
        `have each once; ${r.missing} missing at ${r.withMissing} clients, ${r.duplicates} duplicates at ${r.withDuplicates}`)
    }
    if (r.rejoined < clients) r.reasons.push(`${clients - r.rejoined} of ${clients} not back within ${REJOIN_TIMEOUT_MS / 1000} s`)
    r.peakRssKiB = Math.max(peakBeforeKiB, statusKiB(proc.pid, 'VmHWM'))
    const stats = await all('stats')
    r.errors = stats.reduce((a, s) => a + s.errors, 0)
    if (r.errors > 0) r.reasons.push(`${r.errors} error frames`)
    return r
  } finally {
    await Promise.all(workers.map((w) => w.stop()))
    await stopChild(proc)
    rmSync(dir, { recursive: true, force: true })
  }
}

export function section (bench, servers, results) {
  const { clients, rate, beforeMs, afterMs, spreadMs } = bench.cfg.storm
  const chat = servers.filter((s) => s.kind === 'chat')
  const naive = results.naive
  const lines = chat.map((s) => {
    const r = results[s.id]
    if (r === undefined || naive === undefined) return null
    const ratio = r.rejoinSeconds / naive.rejoinSeconds
    return `${s.label}: rejoin time ${ratio.toFixed(2)}× the naive loop's (target ≤ ${TIME_TARGET}×), ` +
      `${fmtCount(r.recovered)} of ${fmtCount(clients)} recovered (target: all).`
  }).filter((x) => x !== null)
  return [
    `## Reconnect storm: ${fmtCount(clients)} clients in one room, the server killed and restarted`,
    '',
    sideBySide('', results, servers, [
      ['Back in the room', (r) => r.rejoined, fmtCount, false],
      ['Time until all are back', (r) => r.rejoinSeconds, (v) => `${v.toFixed(2)} s`],
      ['… that needed more than one attempt', (r) => r.retried, fmtCount, false],
      ['Connections the kernel\'s accept queue turned away meanwhile (ListenDrops, machine-wide)', (r) => r.listenDropped, fmtCount, false],
      ['Server CPU until all are back', (r) => r.rejoinCpuSec, (v) => `${v.toFixed(2)} s`],
      ['`recovered: true`', (r) => r.recovered, fmtCount, false],
      ['Kept their user id (resume token)', (r) => r.idsKept, fmtCount, false],
      ['Messages sent / acknowledged', (r) => r.sent, (v, r) => Number.isFinite(v) ? `${fmtCount(v)} / ${fmtCount(r.acked)}` : '–', false],
      ['Clients with every acknowledged message once', (r) => r.clean, fmtCount, false],
      ['Acknowledged messages missing (clients)', (r) => r.missing, (v, r) => Number.isFinite(v) ? `${fmtCount(v)} (${fmtCount(r.withMissing)})` : '–', false],
      ['Duplicates (clients)', (r) => r.duplicates, (v, r) => Number.isFinite(v) ? `${fmtCount(v)} (${fmtCount(r.withDuplicates)})` : '–', false],
      ['Server peak RSS (either process)', (r) => r.peakRssKiB / 1024, (v) => `${v.toFixed(0)} MiB`],
      ['Busiest load generator until all are back (% of one core)', (r) => r.loadgenCpu, fmtPct, false]
    ]),
    '',
    ...(lines.length > 0 ? [lines.join(' '), ''] : []),
    `The room fills ${AT_ONCE} clients at a time; fastify-chat runs with \`sqliteStore\` on a file in a temporary directory ` +
      `(its \`historySize\` ${fmtCount(replayWindow(rate))}: ${REPLAY_SECONDS} s of messages, so a client that far behind can still recover) ` +
      `and a publisher sends ${rate} msg/s with cids, for ${beforeMs / 1000} s before the kill and ${afterMs / 1000} s after ` +
      'everyone is back (a message is acknowledged when the publisher gets its echo; what falls due while its socket is ' +
      'down is not sent). The server gets SIGKILL, and a fresh process listens on the same port (and file) with ' +
      `\`listen({ backlog: ${BACKLOG} })\` (the naive loop too). Once it listens, every client reconnects ` +
      (spreadMs > 0 ? `after a random delay of 0 to ${spreadMs} ms, ` : 'at once, ') +
      'fastify-chat\'s with `?resume=<token>&since=<epoch>:<last offset>`, retrying every 100 ms after a failure. ' +
      'The time runs from then until the last client has its `joined` (the naive loop: its upgrade); the server CPU is ' +
      'the new process\'s in that time. Each client records every offset it gets, live or in the replay of its ' +
      '`joined`, and is checked against the offsets the publisher saw acknowledged after its first join. The naive loop ' +
      'gets the same publisher, whose messages it broadcasts to whoever is back, but keeps no history to check: only its reconnect time is compared.' + problems(results, servers)
  ]
}
