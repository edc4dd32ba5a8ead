// Stored messages per second of the history stores: `node bench/store.mjs [--quick]`.
// Runs the built package (npm run build first) and prints a Markdown table.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore, sqliteStore } from '../dist/index.js'

const quick = process.argv.includes('--quick')
const COUNT = quick ? 10_000 : 50_000
const WARMUP = 1_000
const ROOMS = 10
const TEXT = 'x'.repeat(80)

function message (i) {
  // Every 3rd message carries a cid, as browser clients send them.
  const m = { room: `room-${i % ROOMS}`, ts: Date.now(), from: { id: `user-${i % 50}`, name: `user ${i % 50}` }, text: `${TEXT} ${i}` }
  if (i % 3 === 0) m.cid = `cid-${i}`
  return m
}

/** Appends `count` messages one after another, awaiting each as the plugin does; returns the elapsed ms. */
async function appendAll (store, count, from = 0) {
  const start = process.hrtime.bigint()
  for (let i = from; i < from + count; i++) await store.append(message(i))
  return Number(process.hrtime.bigint() - start) / 1e6
}

const dir = await mkdtemp(join(tmpdir(), 'fastify-chat-bench-store-'))
const cases = [
  ['MemoryStore (100 per room)', () => new MemoryStore()],
  ['SqliteStore (file, WAL)', () => sqliteStore({ path: join(dir, 'all.db') })],
  ['SqliteStore (file, WAL, retain.count 1000)', () => sqliteStore({ path: join(dir, 'retain.db'), retain: { count: 1000 } })],
  ['SqliteStore (:memory:)', () => sqliteStore({ path: ':memory:' })]
]

const rows = []
try {
  for (const [name, make] of cases) {
    const store = make()
    await store.init?.()
    await appendAll(store, WARMUP)
    const ms = await appendAll(store, COUNT, WARMUP)
    await store.close?.()
    rows.push([name, COUNT.toLocaleString('en-US'), ms.toFixed(0), Math.round(COUNT / (ms / 1000)).toLocaleString('en-US')])
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}

console.log(`Stored messages per second, ${COUNT.toLocaleString('en-US')} sequential appends over ${ROOMS} rooms (Node ${process.version}, ${process.platform}/${process.arch})\n`)
console.log('| Store | Messages | Time (ms) | Stored msgs/s |')
console.log('|---|---:|---:|---:|')
for (const row of rows) console.log(`| ${row.join(' | ')} |`)
