// fastify-chat across instances through one redis-server, in three parts
// (loopback only; every step and wait is bounded; every child process is
// killed on exit):
//
//   fanout      two instances against one without Redis, under the same load: one
//               publisher, subscribers split evenly over the instances, the rate doubling
//               until a step loses a delivery or its p99 reaches 100 ms.
//   throughput  what one publisher gets through two instances: few subscribers, the rate
//               stepping up until a step loses a message, with Redis on loopback and
//               with Redis 1 ms away (bench/lib/delay-proxy.mjs, 1 ms each way).
//   close       thousands of sockets of one room on instance A close at once, while a
//               client on instance B sends in another room and times its echoes.
//
//   node bench/redis.mjs [--quick] [--parts=fanout,throughput,close]   (after npm run build)
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { Histogram } from './lib/histogram.mjs'
import { cpuSeconds } from './lib/proc.mjs'

const quick = process.argv.includes('--quick')
const PARTS = process.argv.find((a) => a.startsWith('--parts='))?.split('=')[1].split(',') ?? ['fanout', 'throughput', 'close']
const SUBS = quick ? 200 : 1000
const STEP_MS = quick ? 1000 : 2000
const DRAIN_MS = 2000
const P99_LIMIT_MS = 100
const RATES = quick ? [250, 1000, 4000] : [250, 500, 1000, 2000, 4000, 8000]
// throughput: a handful of subscribers, so the publisher's path is what is measured.
const FEW = 10 // subscribers per instance
const PUBLISH_RATES = quick ? [1000, 2500, 5000, 10_000] : [1000, 2000, 3000, 4000, 5000, 6000, 8000, 10_000, 12_000, 16_000]
const PUBLISH_TARGET = 5000
const DELAY_MS = 1
// close: the room that closes, and the echo in another room meanwhile.
const CLOSING = quick ? 1000 : 4000
const ECHO_RATE = 50
const BASELINE_MS = 2000
const CLOSE_WINDOW_MS = quick ? 4000 : 8000
const ECHO_P99_TARGET_MS = 50
const root = new URL('..', import.meta.url).pathname
const children = new Set()

function track (child) {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}
function killAll () { for (const child of children) child.kill('SIGKILL') }
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => { killAll(); process.exit(130) })
// Bounded even if a child hangs: the whole script gives up after 20 minutes.
setTimeout(() => {
  process.stderr.write('redis scenario: still running after 20 min, giving up\n')
  process.exit(1)
}, 20 * 60_000).unref()

async function freePort () {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  return port
}

/** The first line `child` prints; rejects when it exits or prints nothing within `timeoutMs`. */
async function firstLine (child, what, timeoutMs = 15_000) {
  const lines = createInterface({ input: child.stdout })
  let timer
  try {
    return await new Promise((resolve, reject) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`${what} printed nothing within ${timeoutMs / 1000} s`))
      }, timeoutMs)
      lines.once('line', (line) => resolve(line.trim()))
      child.once('exit', (code, signal) => reject(new Error(`${what} exited (${signal ?? code}) before it was ready`)))
    })
  } finally {
    clearTimeout(timer)
    lines.close()
  }
}

async function startRedis () {
  const port = await freePort()
  const child = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] }))
  const lines = createInterface({ input: child.stdout })
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  for await (const line of lines) if (line.includes('Ready to accept connections')) break
  clearTimeout(timer)
  return { child, port, url: `redis://127.0.0.1:${port}` }
}

/** A delay proxy in front of `targetPort` (bench/lib/delay-proxy.mjs, in its own process). */
async function startProxy (targetPort, delayMs) {
  const child = track(spawn(process.execPath, [`${root}bench/lib/delay-proxy.mjs`, String(targetPort), String(delayMs)], { stdio: ['pipe', 'pipe', 'inherit'] }))
  const port = Number(await firstLine(child, 'delay proxy'))
  return { child, port, url: `redis://127.0.0.1:${port}` }
}

/** Median round trip of a Redis PING on `port`, in ms, over `n` pings one after the other (each bounded). */
async function pingMs (port, n = 50) {
  const socket = connect({ host: '127.0.0.1', port })
  await once(socket, 'connect')
  socket.setNoDelay(true)
  const times = []
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now()
      socket.write('PING\r\n')
      const timer = setTimeout(() => socket.destroy(new Error('no PONG within 2 s')), 2000)
      await once(socket, 'data')
      clearTimeout(timer)
      times.push(performance.now() - t)
    }
  } finally {
    socket.destroy()
  }
  times.sort((a, b) => a - b)
  return times[times.length >> 1]
}

async function startServer (script, env = {}) {
  const child = track(spawn(process.execPath, [`${root}bench/servers/${script}`], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] }))
  return { child, port: Number(await firstLine(child, script)) }
}

async function startPair (redisUrl) {
  const prefix = `bench-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const env = { REDIS_URL: redisUrl, REDIS_PREFIX: prefix }
  return [await startServer('chat-redis.mjs', env), await startServer('chat-redis.mjs', env)]
}

/** A load generator process and a request/response call over IPC. */
function loadgen () {
  const child = track(spawn(process.execPath, [`${root}bench/loadgen.mjs`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  let next = 0
  const waiting = new Map()
  child.on('message', ({ id, result, error }) => {
    const w = waiting.get(id)
    waiting.delete(id)
    if (error !== undefined) w?.reject(new Error(error))
    else w?.resolve(result)
  })
  const call = (cmd, args = {}, timeoutMs = 60_000) => new Promise((resolve, reject) => {
    const id = ++next
    const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`loadgen ${cmd} timed out`)) }, timeoutMs)
    waiting.set(id, { resolve: (r) => { clearTimeout(timer); resolve(r) }, reject: (e) => { clearTimeout(timer); reject(e) } })
    child.send({ id, cmd, ...args })
  })
  return { child, call }
}

/**
 * One step: the publisher (on gens[0]) sends `rate` msg/s for STEP_MS, then
 * every delivery and every echo is awaited for up to DRAIN_MS. Fails on any
 * delivery or echo missing, and on a p99 at or over `p99Limit` (null: none).
 */
async function step (gens, subs, rate, p99Limit) {
  await Promise.all(gens.map((g) => g.call('reset')))
  const published = await gens[0].call('publish', { rate, durationMs: STEP_MS }, STEP_MS + 30_000)
  const sent = published.sent
  const expected = sent * subs
  const deadline = Date.now() + DRAIN_MS
  let stats
  for (;;) {
    stats = await Promise.all(gens.map((g) => g.call('stats')))
    const received = stats.reduce((sum, s) => sum + s.received, 0)
    const echoes = stats.reduce((sum, s) => sum + s.echoes, 0)
    if ((received >= expected && echoes >= sent) || Date.now() > deadline) break
    await sleep(100)
  }
  const received = stats.reduce((sum, s) => sum + s.received, 0)
  const echoes = stats.reduce((sum, s) => sum + s.echoes, 0)
  const errors = stats.reduce((sum, s) => sum + s.errors, 0)
  const hist = new Histogram()
  for (const s of stats) hist.merge(s.hist)
  const p99 = hist.quantile(0.99)
  const reasons = []
  if (sent < published.planned) reasons.push(`sent ${sent} of ${published.planned}`)
  if (received !== expected) reasons.push(`${received} of ${expected} deliveries`)
  if (echoes !== sent) reasons.push(`${echoes} of ${sent} echoes`)
  if (errors > 0) reasons.push(`${errors} error frames`)
  if (p99Limit !== null && !(p99 < p99Limit)) reasons.push(`p99 ${p99.toFixed(1)} ms`)
  return { rate, sent, received, expected, p99, reasons }
}

/** Connects `subsEach` subscribers to each of `ports` (one generator each; the first hosts the publisher). */
async function connectGens (ports, subsEach) {
  const gens = ports.map(() => loadgen())
  const results = await Promise.all(gens.map((g, i) => g.call('connect', {
    port: ports[i], kind: 'chat', subs: subsEach, pubs: i === 0 ? 1 : 0, pubsCount: false, sample: Math.min(10, subsEach), roomSize: 0, concurrency: 50, timeoutMs: 60_000
  }, 70_000)))
  const ready = results.reduce((a, r) => a + r.ready, 0)
  if (ready !== ports.length * subsEach + 1) throw new Error(`${ready} of ${ports.length * subsEach + 1} connected: ${JSON.stringify(results.map((r) => r.failures))}`)
  return gens
}

/**
 * Steps through `rates` until one fails; the best passing step, and the first
 * failing one. A step at a quarter of the first rate goes first, uncounted, so
 * the first counted step does not pay for compiling the hot paths.
 */
async function ramp (ports, subsEach, rates, label, p99Limit = P99_LIMIT_MS) {
  const gens = await connectGens(ports, subsEach)
  let best = null
  let failed = null
  const passed = []
  try {
    await step(gens, subsEach * ports.length, Math.max(1, Math.floor(rates[0] / 4)), null)
    for (const rate of rates) {
      const r = await step(gens, subsEach * ports.length, rate, p99Limit)
      process.stderr.write(`  ${label}, ${rate} msg/s: ${r.received}/${r.expected} deliveries, p99 ${r.p99.toFixed(1)} ms${r.reasons.length === 0 ? '' : ` (fails: ${r.reasons.join(', ')})`}\n`)
      if (r.reasons.length > 0) {
        failed = r
        break
      }
      best = r
      passed.push(r)
    }
  } finally {
    for (const g of gens) g.child.kill('SIGKILL')
  }
  return { best, failed, passed }
}

const fmtCount = (n) => Math.round(n).toLocaleString('en-US')
const fmtMs = (n) => Number.isFinite(n) ? `${n.toFixed(1)} ms` : '–'
const out = []
const started = Date.now()
const redis = await startRedis()

// ----------------------------------------------------------------- fanout ---

/** Runs a part; one that throws (a server that cannot start, say) is reported as n/a with the reason. */
async function part (id, title, fn) {
  if (!PARTS.includes(id)) return
  try {
    await fn()
  } catch (err) {
    process.stderr.write(`redis ${id} failed: ${err.message}\n`)
    out.push(`**${title}**: n/a (${err.message.split('\n')[0]})`, '')
  }
}

await part('fanout', 'Fan-out', async () => {
  process.stderr.write(`redis fanout: ${SUBS} subscribers, one publisher\n`)
  const single = await startServer('chat.mjs')
  const one = await ramp([single.port], SUBS, RATES, 'one instance')
  single.child.kill('SIGKILL')
  const [a, b] = await startPair(redis.url)
  const two = await ramp([a.port, b.port], SUBS / 2, RATES, 'two instances')
  a.child.kill('SIGKILL')
  b.child.kill('SIGKILL')
  const fmt = ({ best }) => best === null ? 'below the first step' : fmtCount(best.rate * SUBS)
  const p99 = ({ best }) => best === null ? '–' : fmtMs(best.p99)
  out.push('**Fan-out** (max deliveries/s with nothing lost and p99 < 100 ms)', '',
    '| Setup | Max deliveries/s | p99 at that rate |', '|---|---:|---:|',
    `| one instance, in-process adapter | ${fmt(one)} | ${p99(one)} |`,
    `| two instances, Redis adapter (half the subscribers on each) | ${fmt(two)} | ${p99(two)} |`, '',
    `${SUBS} subscribers, one publisher; the publish rate goes ${RATES.join(', ')} msg/s, ${STEP_MS / 1000} s per step.`, '')
})

// ------------------------------------------------------------- throughput ---

await part('throughput', 'One publisher through two instances', async () => {
  const rows = []
  const direct = await pingMs(redis.port)
  for (const [label, delayMs] of [['Redis on loopback', 0], [`Redis ${DELAY_MS} ms away (proxy, ${DELAY_MS} ms each way)`, DELAY_MS]]) {
    process.stderr.write(`redis throughput: ${label}\n`)
    const proxy = delayMs === 0 ? null : await startProxy(redis.port, delayMs)
    const rtt = proxy === null ? direct : await pingMs(proxy.port)
    const [a, b] = await startPair(proxy?.url ?? redis.url)
    const r = await ramp([a.port, b.port], FEW, PUBLISH_RATES, label, null)
    for (const child of [a.child, b.child, proxy?.child]) child?.kill('SIGKILL')
    const top = r.best === null ? `below ${fmtCount(PUBLISH_RATES[0])}` : fmtCount(r.best.rate)
    const next = r.failed === null ? `none failed up to ${fmtCount(PUBLISH_RATES[PUBLISH_RATES.length - 1])}` : `${fmtCount(r.failed.rate)}: ${r.failed.reasons.join(', ')}`
    const verdict = r.best !== null && r.best.rate >= PUBLISH_TARGET ? 'yes' : 'no'
    const atTarget = r.passed.find((x) => x.rate === PUBLISH_TARGET)
    rows.push(`| ${label} | ${fmtMs(rtt)} | ${atTarget === undefined ? '–' : fmtMs(atTarget.p99)} | ${top} | ${r.best === null ? '–' : fmtMs(r.best.p99)} | ${next} | ${verdict} |`)
  }
  out.push(`**One publisher through two instances** (target ≥ ${fmtCount(PUBLISH_TARGET)} msg/s with nothing lost)`, '',
    `| Redis | PING round trip (median) | p99 at ${fmtCount(PUBLISH_TARGET)} msg/s | Max msg/s, nothing lost | p99 at that rate | First failing step | Target met |`,
    '|---|---:|---:|---:|---:|---|---|', ...rows, '',
    `One publisher on instance A, ${FEW} subscribers on each instance, in one room; the rate goes ${PUBLISH_RATES.map(fmtCount).join(', ')} ` +
      `msg/s, ${STEP_MS / 1000} s per step (after an uncounted warm-up step), until a step loses a delivery or an echo ` +
      `(waiting up to ${DRAIN_MS / 1000} s after it); p99 is the latency of the subscribers' deliveries. ` +
      'The proxy (bench/lib/delay-proxy.mjs) holds each chunk 1 ms in each direction; ' +
      'timers fire on whole milliseconds, so the PING round trip shows what it really added.', '')
})

// ------------------------------------------------------------------ close ---

await part('close', `Closing ${fmtCount(CLOSING)} sockets of one room`, async () => {
  process.stderr.write(`redis close: ${CLOSING} sockets of one room on instance A, an echo at ${ECHO_RATE} msg/s on instance B\n`)
  const [a, b] = await startPair(redis.url)
  const crowd = loadgen()
  const echo = loadgen()
  try {
    const filling = Date.now()
    const filled = await crowd.call('connect', { port: a.port, kind: 'chat', subs: CLOSING, pubs: 0, sample: 0, room: 'crowd', concurrency: 50, timeoutMs: 60_000 + CLOSING * 80 }, 70_000 + CLOSING * 80)
    const fillSeconds = (Date.now() - filling) / 1000
    const echoing = await echo.call('connect', { port: b.port, kind: 'chat', subs: 0, pubs: 1, pubsCount: true, sample: 1, room: 'echo', timeoutMs: 30_000 })
    if (filled.ready !== CLOSING || echoing.ready !== 1) throw new Error(`${filled.ready} of ${CLOSING} in the room, echo client ${echoing.ready === 1 ? 'in' : 'out'}`)
    process.stderr.write(`  ${CLOSING} in the room in ${fillSeconds.toFixed(1)} s\n`)

    /** Waits (bounded) until the echo client has all `sent` echoes of the window; its stats then. */
    const echoed = async (sent) => {
      let s = await echo.call('stats')
      for (const end = Date.now() + DRAIN_MS; s.received < sent && Date.now() < end; await sleep(50)) s = await echo.call('stats')
      return s
    }
    await echo.call('reset')
    const warm = await echo.call('publish', { rate: ECHO_RATE, durationMs: BASELINE_MS }, BASELINE_MS + 30_000)
    const before = new Histogram()
    before.merge((await echoed(warm.sent)).hist)

    await echo.call('reset')
    const redisCpu = cpuSeconds(redis.child.pid)
    const aCpu = cpuSeconds(a.child.pid)
    const publishing = echo.call('publish', { rate: ECHO_RATE, durationMs: CLOSE_WINDOW_MS }, CLOSE_WINDOW_MS + 30_000)
    await sleep(500)
    const closing = Date.now()
    await crowd.call('close', { code: 1001 })
    let closedSeconds = NaN
    for (const end = Date.now() + CLOSE_WINDOW_MS; Date.now() < end; await sleep(50)) {
      if (((await crowd.call('stats')).open.sub ?? 0) === 0) {
        closedSeconds = (Date.now() - closing) / 1000
        break
      }
    }
    const published = await publishing
    const redisCpuSec = cpuSeconds(redis.child.pid) - redisCpu
    const aCpuSec = cpuSeconds(a.child.pid) - aCpu
    const s = await echoed(published.sent)
    const during = new Histogram()
    during.merge(s.hist)
    const p99 = during.quantile(0.99)
    process.stderr.write(`  echo during the close: ${s.received} of ${published.sent}, p50 ${fmtMs(during.quantile(0.5))}, p99 ${fmtMs(p99)}, max ${fmtMs(during.max)}\n`)
    out.push(`**Closing ${fmtCount(CLOSING)} sockets of one room** (target: p99 echo in another room < ${ECHO_P99_TARGET_MS} ms)`, '',
      '| | Echoes | p50 | p99 | max |', '|---|---:|---:|---:|---:|',
      `| Before, ${BASELINE_MS / 1000} s | ${fmtCount(before.total)} | ${fmtMs(before.quantile(0.5))} | ${fmtMs(before.quantile(0.99))} | ${fmtMs(before.max)} |`,
      `| During the close, ${CLOSE_WINDOW_MS / 1000} s | ${fmtCount(s.received)} of ${fmtCount(published.sent)} | ${fmtMs(during.quantile(0.5))} | ${fmtMs(p99)} | ${fmtMs(during.max)} |`, '',
      `Instance A holds ${fmtCount(CLOSING)} sockets in the room \`crowd\` (filled 50 at a time in ${fillSeconds.toFixed(1)} s); a client on ` +
        `instance B sends ${ECHO_RATE} msg/s in the room \`echo\` and times each echo (now − the scheduled send time). 0.5 s into the ` +
        `window every socket of \`crowd\` sends a close frame (1001) at once; the client saw all closed after ${Number.isFinite(closedSeconds) ? `${closedSeconds.toFixed(2)} s` : `more than ${CLOSE_WINDOW_MS / 1000} s`}. ` +
        `CPU in the window: redis-server ${redisCpuSec.toFixed(2)} s, instance A ${aCpuSec.toFixed(2)} s. ` +
        `Target met: ${p99 < ECHO_P99_TARGET_MS && s.received === published.sent ? 'yes' : 'no'}.`, '')
  } finally {
    for (const child of [crowd.child, echo.child, a.child, b.child]) child.kill('SIGKILL')
  }
})

killAll()
console.log(out.join('\n') +
  `\nBoth instances, redis-server, the proxy and the load generators share this machine's cores (no pinning here). Took ${Math.round((Date.now() - started) / 1000)} s.`)
process.exit(0)
