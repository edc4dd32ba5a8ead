// fastify-chat as the benchmark measures it: the compiled plugin with the
// per-connection rate limit off (the publishers send far more than 10 msg/s),
// no heartbeat, room for 100k sockets, everyone auto-joined to one room.
// CHAT_STORE=sqlite swaps the in-memory history for sqliteStore on a temp file,
// or on CHAT_DB, which is left in place at exit so a restarted server (the
// storm scenario) finds its history and resume secret there. CHAT_STORE_HISTORY
// is the store's `historySize`: how far behind a `since` may be and still recover.
// CHAT_SECRET sets the `secret` option; LISTEN_PORT and LISTEN_BACKLOG go to listen()
// (a restart takes the same port; a storm needs more than Node's default backlog of 511).
// CHAT_AUTHORIZE=1 adds an `authorize` that allows everything synchronously:
// what access control costs when it says yes, once per message and join.
// CHAT_IDENTIFY=1 adds an `identify` that takes `?name=` as the user's id, so
// users are not guests and their read positions are kept in the store.
// CHAT_DROP_EXTRAS=1 is a control, not a server to deploy: every `read` and
// `signal` frame is dropped as ws hands it over, before fastify-chat sees it,
// so the chatty room's extras cost only their traffic.
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import fastifyChat from '../../dist/index.js'
import { listenOptions, serve } from './control.mjs'

const opts = {
  rateLimit: false,
  heartbeatInterval: 0,
  maxConnections: 100_000,
  defaultRoom: 'bench',
  historySize: 100
}

let dbPath = null
if (process.env.CHAT_STORE === 'sqlite') {
  const { sqliteStore } = await import('../../dist/index.js')
  if (typeof sqliteStore !== 'function') {
    console.error('CHAT_STORE=sqlite but dist/index.js does not export sqliteStore')
    process.exit(2)
  }
  const kept = process.env.CHAT_DB
  if (kept === undefined) dbPath = join(tmpdir(), `fastify-chat-bench-${process.pid}.db`)
  const historySize = Number(process.env.CHAT_STORE_HISTORY ?? 0)
  opts.store = sqliteStore({ path: kept ?? dbPath, ...(historySize > 0 ? { historySize } : {}) })
}
if (process.env.CHAT_SECRET !== undefined) opts.secret = process.env.CHAT_SECRET

if (process.env.CHAT_AUTHORIZE === '1') opts.authorize = () => true
if (process.env.CHAT_IDENTIFY === '1') opts.identify = (request) => ({ id: String(request.query.name), name: String(request.query.name).slice(0, 32) })

if (process.env.CHAT_DROP_EXTRAS === '1') {
  const { WebSocket } = await import('ws')
  const emit = WebSocket.prototype.emit
  // `{"type":"r…` and `{"type":"s…`: the type's first letter is at 9. Messages are plain text here.
  WebSocket.prototype.emit = function (event, data, ...rest) {
    if (event === 'message' && data[0] === 0x7b && (data[9] === 0x72 || data[9] === 0x73)) return false
    return emit.call(this, event, data, ...rest)
  }
}

const removeDb = () => {
  if (dbPath === null) return
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(dbPath + suffix, { force: true })
}

const app = Fastify({ logger: false })
await app.register(fastifyChat, opts)
await app.listen(listenOptions())
serve(app.server.address().port, { stats: () => app.chat.stats(), cleanup: removeDb })
