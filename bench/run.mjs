// `npm run bench [-- --quick]`: fastify-chat side by side with the naive
// broadcast loop on @fastify/websocket and with Socket.IO. Every server runs
// in its own process (pinned to core 0 when taskset works) and every scenario
// gets a fresh one; the load generator (bench/loadgen.mjs) runs in separate
// processes on the other cores, over loopback only, and its CPU is reported
// next to every number so a saturated generator is visible.
//
// Options (after `--`):
//   --quick               smoke run (under two minutes)
//   --servers=a,b         subset of chat,sqlite,authorize,extras,naive,floor,socketio, or reads, signals and dropped (only when named)
//   --scenarios=a,b       subset of ramp,cpu,chatty,idle,overload,fill,storm,bigroom,store,redis
//   --workers=N           load generator processes (default: cores - 1, at least 1)
//   --nice=N              run servers and load generators at this nice level (e.g. -10 on a
//                         machine other work shares; needs root for negative values)
//   --out=FILE            Markdown output (default bench/results-latest.md)
//   --subs=a,b            fan-out ramp at these subscriber counts only (default 100,1000,5000)
//   --fill=a,b            fill rooms of these sizes (default 5000,10000)
//   --storm-clients=N     clients in the storm's room (default 5000)
//   --storm-rate=N        the storm publisher's msg/s (default 10)
//   --chatty-rate=N       the chatty room's msg/s in all (default 1000)
//   --rounds=N            runs per server of the scenarios measured in rounds (default 3), the servers taking turns
//   --storm-spread=MS     storm clients reconnect over a random 0..MS delay, as the typed client does (default 0: at once)
//   --cpu-prof=DIR        write a V8 CPU profile of every server process to DIR (open it in Chrome DevTools)
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CalmBudget } from './lib/calm.mjs'
import { log, runStarted } from './lib/log.mjs'
import { killAll, killChildrenOnExit, tasksetWorks } from './lib/proc.mjs'
import { Report, errors, head, settings } from './lib/report.mjs'
import { preset } from './lib/settings.mjs'
import * as chatty from './scenarios/chatty.mjs'
import * as bigroom from './scenarios/bigroom.mjs'
import * as cpu from './scenarios/cpu.mjs'
import * as fill from './scenarios/fill.mjs'
import * as idle from './scenarios/idle.mjs'
import * as overload from './scenarios/overload.mjs'
import * as ramp from './scenarios/ramp.mjs'
import * as standalone from './scenarios/standalone.mjs'
import * as storm from './scenarios/storm.mjs'

const here = dirname(fileURLToPath(import.meta.url))

// ---------------------------------------------------------------- options ---

const argv = process.argv.slice(2)
const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1]
const quick = argv.includes('--quick')
const out = option('out') ?? join(here, 'results-latest.md')
const cfg = preset(quick)
if (option('subs') !== undefined) cfg.rampSizes = option('subs').split(',').map(Number)
if (option('fill') !== undefined) cfg.fillSizes = option('fill').split(',').map(Number)
if (option('storm-clients') !== undefined) cfg.storm.clients = Number(option('storm-clients'))
if (option('storm-rate') !== undefined) cfg.storm.rate = Number(option('storm-rate'))
if (option('storm-spread') !== undefined) cfg.storm.spreadMs = Number(option('storm-spread'))
if (option('chatty-rate') !== undefined) cfg.chattyRate = Number(option('chatty-rate'))
if (option('rounds') !== undefined) cfg.rounds = Math.max(1, Number(option('rounds')))

const cores = os.cpus().length
const pinned = tasksetWorks() && cores >= 2

/** What every scenario needs: the settings, where processes run, and what the run collects on the way. */
const bench = {
  quick,
  cfg,
  cores,
  pinned,
  placement: {
    serverCpus: pinned ? '0' : null,
    loadgenCpus: pinned ? (cores > 2 ? `1-${cores - 1}` : '1') : null,
    nice: Number(option('nice') ?? 0),
    cpuProf: option('cpu-prof'),
    workers: Number(option('workers') ?? Math.max(1, Math.min(4, cores - 1)))
  },
  calm: new CalmBudget(cfg.calmBudgetMs),
  machine: {}, // open-file limits, as the first rig found them
  failures: []
}

killChildrenOnExit(cfg.hardLimitMs)

// ---------------------------------------------------------------- servers ---

const dist = await import(join(here, '..', 'dist', 'index.js'))
const hasSqlite = typeof dist.sqliteStore === 'function'

const ALL_SERVERS = [
  { id: 'chat', label: 'fastify-chat', file: 'chat.mjs', kind: 'chat' },
  { id: 'sqlite', label: 'fastify-chat (SQLite store)', file: 'chat.mjs', kind: 'chat', env: { CHAT_STORE: 'sqlite' }, only: ['ramp', 'cpu'] },
  { id: 'authorize', label: 'fastify-chat (authorize → true)', file: 'chat.mjs', kind: 'chat', env: { CHAT_AUTHORIZE: '1' }, only: ['cpu'] },
  // Every subscriber reads once a second and every publisher types once a second; users come from
  // `identify`, so read positions are kept in the store (a guest's live only in its socket).
  { id: 'extras', label: 'fastify-chat (signals and reads)', file: 'chat.mjs', kind: 'chat', env: { CHAT_IDENTIFY: '1' }, extras: true, only: ['chatty'] },
  // One of the two alone, to tell their costs apart; only when named in --servers.
  { id: 'reads', label: 'fastify-chat (reads only)', file: 'chat.mjs', kind: 'chat', env: { CHAT_IDENTIFY: '1' }, extras: 'reads', only: ['chatty'], named: true },
  { id: 'signals', label: 'fastify-chat (signals only)', file: 'chat.mjs', kind: 'chat', env: { CHAT_IDENTIFY: '1' }, extras: 'signals', only: ['chatty'], named: true },
  // The extras' traffic alone: the same frames sent, dropped on arrival (a control, only when named).
  { id: 'dropped', label: 'extras dropped on arrival', file: 'chat.mjs', kind: 'chat', env: { CHAT_IDENTIFY: '1', CHAT_DROP_EXTRAS: '1' }, extras: true, only: ['chatty'], named: true },
  { id: 'naive', label: 'naive loop', file: 'naive.mjs', kind: 'naive' },
  { id: 'floor', label: 'floor (raw writes)', file: 'floor.mjs', kind: 'naive', only: ['cpu'] },
  { id: 'socketio', label: 'Socket.IO', file: 'socketio.mjs', kind: 'socketio', only: ['ramp', 'cpu', 'chatty', 'idle', 'overload'] }
]
const wantedServers = option('servers')?.split(',') ?? ALL_SERVERS.filter((s) => s.named !== true).map((s) => s.id)
const SERVERS = ALL_SERVERS.filter((s) => wantedServers.includes(s.id) && (s.id !== 'sqlite' || hasSqlite))
const serversFor = (scenario) => SERVERS.filter((s) => s.only === undefined || s.only.includes(scenario))

// In this order whatever order --scenarios gives: overload reads the ramp's results.
// fill, storm and bigroom measure rooms of thousands: fastify-chat against the naive loop only.
const SCENARIOS = { ramp, cpu, chatty, idle, overload, fill, storm, bigroom }
const STANDALONE = ['store', 'redis']
const wantedScenarios = option('scenarios')?.split(',') ?? [...Object.keys(SCENARIOS), ...STANDALONE]
const unknown = wantedScenarios.filter((id) => SCENARIOS[id] === undefined && !STANDALONE.includes(id))
if (unknown.length > 0) {
  console.error(`unknown scenario(s): ${unknown.join(', ')}`)
  process.exit(2)
}
const scenarios = Object.entries(SCENARIOS).filter(([id]) => wantedScenarios.includes(id))

// -------------------------------------------------------------------- run ---

log(`fastify-chat benchmark (${quick ? 'quick' : 'full'}); servers: ${SERVERS.map((s) => s.label).join(', ')}; ` +
  `pinning ${pinned ? 'on' : 'off'}; ${bench.placement.workers} load generator process(es)` +
  (hasSqlite ? '' : '; sqliteStore is not exported by dist/index.js, so no SQLite column'))

const results = { ramp: {}, cpu: {}, chatty: {}, idle: {}, overload: null }
for (const [id, scenario] of scenarios) results[id] = await scenario.run(bench, serversFor(id), results)
const scripts = await standalone.run(bench, STANDALONE.filter((id) => wantedScenarios.includes(id)))

// ----------------------------------------------------------------- report ---

const report = new Report()
for (const text of head(bench, { totalSeconds: (Date.now() - runStarted) / 1000, standaloneSeconds: scripts.seconds })) report.emit(text)
for (const [id, scenario] of scenarios) report.section(scenario.section(bench, serversFor(id), results[id]))
report.section(settings({ hasSqlite, floor: scenarios.some(([id]) => id === 'cpu') && serversFor('cpu').some((s) => s.id === 'floor') }))
for (const section of standalone.sections(scripts)) report.section(section)
report.section(errors(bench.failures))

report.write(out)
log(`written to ${out}`)
killAll()
process.exit(bench.failures.length > 0 ? 1 : 0)
