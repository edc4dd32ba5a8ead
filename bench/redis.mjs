// Fan-out across two fastify-chat instances through one redis-server, next to
// a single instance without Redis, under the same load: one publisher,
// subscribers split evenly over the instances, the rate doubling until a step
// loses a delivery or its p99 reaches 100 ms. Loopback only; every step and
// wait is bounded; every child process is killed on exit.
//
//   node bench/redis.mjs [--quick]      (after npm run build)
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { Histogram } from './lib/histogram.mjs'

const quick = process.argv.includes('--quick')
const SUBS = quick ? 200 : 1000
const STEP_MS = quick ? 1000 : 2000
const DRAIN_MS = 2000
const RATES = quick ? [250, 1000, 4000] : [250, 500, 1000, 2000, 4000, 8000]
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

async function freePort () {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  return port
}

async function firstLine (child, what, timeoutMs = 15_000) {
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  try {
    const [line] = await once(createInterface({ input: child.stdout }), 'line')
    return line.trim()
  } catch {
    throw new Error(`${what} ended before it was ready`)
  } finally {
    clearTimeout(timer)
  }
}

async function startRedis () {
  const port = await freePort()
  const child = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] }))
  const lines = createInterface({ input: child.stdout })
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  for await (const line of lines) if (line.includes('Ready to accept connections')) break
  clearTimeout(timer)
  return { child, url: `redis://127.0.0.1:${port}` }
}

async function startServer (script, env = {}) {
  const child = track(spawn(process.execPath, [`${root}bench/servers/${script}`], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] }))
  return { child, port: Number(await firstLine(child, script)) }
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

/** Runs the ramp against `ports` (one generator each; the first hosts the publisher). */
async function ramp (ports) {
  const gens = ports.map(() => loadgen())
  const share = Math.floor(SUBS / ports.length)
  await Promise.all(gens.map((g, i) => g.call('connect', {
    port: ports[i], kind: 'chat', subs: share, pubs: i === 0 ? 1 : 0, pubsCount: i === 0 ? 1 : 0, sample: 10, roomSize: 0, concurrency: 50, timeoutMs: 30_000
  })))
  let best = null
  for (const rate of RATES) {
    await Promise.all(gens.map((g) => g.call('reset')))
    const published = await gens[0].call('publish', { rate, durationMs: STEP_MS }, STEP_MS + 30_000)
    const sent = published?.sent ?? Math.floor(rate * STEP_MS / 1000)
    const expected = sent * share * ports.length
    // Wait (bounded) for the deliveries of what was sent.
    const deadline = Date.now() + DRAIN_MS
    let stats
    for (;;) {
      stats = await Promise.all(gens.map((g) => g.call('stats')))
      const received = stats.reduce((sum, s) => sum + s.received, 0)
      if (received >= expected || Date.now() > deadline) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const received = stats.reduce((sum, s) => sum + s.received, 0)
    const hist = new Histogram()
    for (const s of stats) hist.merge(s.hist)
    const p99 = hist.quantile(0.99)
    const ok = received >= expected && p99 < 100
    process.stderr.write(`  ${ports.length} instance(s), ${rate} msg/s: ${received}/${expected} deliveries, p99 ${p99.toFixed(1)} ms${ok ? '' : ' (fails)'}\n`)
    if (!ok) break
    best = { rate, deliveries: rate * SUBS, p99 }
  }
  for (const g of gens) g.child.kill('SIGKILL')
  return best
}

const started = Date.now()
process.stderr.write(`redis scenario: ${SUBS} subscribers, one publisher\n`)
const single = await startServer('chat.mjs')
const one = await ramp([single.port])
single.child.kill('SIGKILL')

const redis = await startRedis()
const prefix = `bench-${process.pid}`
const a = await startServer('chat-redis.mjs', { REDIS_URL: redis.url, REDIS_PREFIX: prefix })
const b = await startServer('chat-redis.mjs', { REDIS_URL: redis.url, REDIS_PREFIX: prefix })
const two = await ramp([a.port, b.port])
killAll()

const fmt = (r) => r === null ? 'below the first step' : `${Math.round(r.deliveries).toLocaleString('en-US')}`
const p99 = (r) => r === null ? '–' : `${r.p99.toFixed(1)} ms`
console.log('| Setup | Max deliveries/s (no loss, p99 < 100 ms) | p99 at that rate |')
console.log('|---|---:|---:|')
console.log(`| one instance, in-process adapter | ${fmt(one)} | ${p99(one)} |`)
console.log(`| two instances, Redis adapter (half the subscribers on each) | ${fmt(two)} | ${p99(two)} |`)
console.log(`\n${SUBS} subscribers, one publisher; the publish rate goes ${RATES.join(', ')} msg/s, ${STEP_MS / 1000} s per step. ` +
  'Both instances, redis-server and the load generators share this machine\'s cores (no pinning here). ' +
  `Took ${Math.round((Date.now() - started) / 1000)} s.`)
process.exit(0)
