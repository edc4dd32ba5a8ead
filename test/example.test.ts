import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { access, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import WebSocket from 'ws'
import { buildServer, DEFAULT_CHAT_DB, MAX_MESSAGE_LENGTH, storeFromEnv } from '../example/server.js'
import { MemoryStore } from '../lib/stores/memory-store.js'
import { SqliteStore } from '../lib/stores/sqlite-store.js'
import type { ServerFrame } from '../lib/protocol/wire.js'
import { within } from './helpers/chat.js'

// Tests never write the example's ./data: each one that keeps history on
// disk gets its own temp dir, the others keep it in memory.
const tmp = await mkdtemp(join(tmpdir(), 'fastify-chat-example-'))
t.teardown(() => rm(tmp, { recursive: true, force: true }))

async function build (t: { teardown (fn: () => unknown): void }) {
  const app = await buildServer({ env: { CHAT_DB: ':memory:' } })
  t.teardown(() => app.close())
  return app
}

t.test('serves the page and its assets', async (t) => {
  const app = await build(t)
  const page = await app.inject('/')
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, '<script type="module" src="/app.js"></script>')
  t.match(page.body, /<link rel="icon" href="data:/, 'an inline icon: no request for /favicon.ico')

  const script = await app.inject('/app.js')
  t.equal(script.statusCode, 200)
  t.match(script.headers['content-type'], /javascript/)
  t.match(script.body, "from '/chat/client.js'")

  const css = await app.inject('/style.css')
  t.equal(css.statusCode, 200)
  t.match(css.headers['content-type'], /^text\/css/)
})

/** The first frame from now on that passes `predicate`. */
async function frameWhere (ws: WebSocket, predicate: (frame: ServerFrame) => boolean): Promise<ServerFrame> {
  return await new Promise((resolve) => {
    const listener = (data: WebSocket.RawData): void => {
      const frame = JSON.parse(data.toString()) as ServerFrame
      if (!predicate(frame)) return
      ws.off('message', listener)
      resolve(frame)
    }
    ws.on('message', listener)
  })
}

t.test('the page is told the message limit the server enforces', async (t) => {
  for (const [chat, limit] of [[{}, MAX_MESSAGE_LENGTH], [{ maxMessageLength: 5 }, 5]] as const) {
    const app = await buildServer({ chat, env: { CHAT_DB: ':memory:' } })
    t.teardown(() => app.close())
    const res = await app.inject('/settings.json')
    t.equal(res.statusCode, 200)
    t.strictSame(res.json(), { maxMessageLength: limit })

    // One character more than the page allows is what the server refuses.
    await app.ready()
    const ws = await app.injectWS('/chat?name=alice')
    t.teardown(() => ws.terminate())
    const refused = frameWhere(ws, (frame) => frame.type === 'error')
    ws.send(JSON.stringify({ type: 'message', text: 'x'.repeat(limit + 1), cid: 'over' }))
    t.match(await within(refused, 3000, 'the refusal'), { type: 'error', code: 'text_too_long', cid: 'over' })
    const fits = frameWhere(ws, (frame) => frame.type === 'message')
    ws.send(JSON.stringify({ type: 'message', text: 'x'.repeat(limit), cid: 'fits' }))
    t.match(await within(fits, 3000, 'the echo'), { type: 'message', cid: 'fits' })
  }
})

t.test('serves the compiled browser client', async (t) => {
  const app = await build(t)
  const res = await app.inject('/chat/client.js')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/javascript/)
  t.match(res.body, 'export function connect')
  t.notMatch(res.body, /^import /m, 'a standalone module: nothing to import')
})

t.test('chats over the socket', async (t) => {
  const app = await build(t)
  await app.ready()
  const frames: ServerFrame[] = []
  let arrived = (): void => {}
  // Listen from the start: the server speaks first.
  const ws = await app.injectWS('/chat?name=alice', {}, {
    onInit (socket: WebSocket) {
      socket.on('message', (data) => {
        frames.push(JSON.parse(data.toString()))
        arrived()
      })
    }
  })
  const next = async (type: ServerFrame['type']): Promise<ServerFrame> => {
    while (frames.length === 0) await within(new Promise<void>((resolve) => { arrived = resolve }), 3000, type)
    const frame = frames.shift() as ServerFrame
    t.equal(frame.type, type)
    return frame
  }

  t.match(await next('welcome'), { name: 'alice' })
  t.match(await next('joined'), { room: 'lobby', users: [{ name: 'alice' }] })
  ws.send(JSON.stringify({ type: 'message', text: 'hello', cid: 'c1' }))
  t.match(await next('message'), { text: 'hello', cid: 'c1', from: { name: 'alice' } })

  // An injected socket never reports its close to the server, which would
  // hold app.close() for the shutdown timeout; terminating it does not.
  const closed = once(ws, 'close')
  ws.terminate()
  await closed
})

t.test('history lives in CHAT_DB (the store creates its directory) and survives a restart', async (t) => {
  const db = join(tmp, 'restart', 'nested', 'chat.db')
  const env = { CHAT_DB: db }
  const first = await buildServer({ env })
  t.teardown(() => first.close())
  await first.ready()
  await access(db)
  const one = await first.chat.broadcast('lobby', 'before the restart')
  await first.close()

  const second = await buildServer({ env })
  t.teardown(() => second.close())
  await second.ready()
  const two = await second.chat.broadcast('lobby', 'after the restart')
  t.equal(two.offset, one.offset + 1)
  t.strictSame((await second.chat.history('lobby')).map((m) => m.text), ['before the restart', 'after the restart'])
})

t.test('storeFromEnv picks SQLite at CHAT_DB, ./data/chat.db by default', async (t) => {
  t.equal(DEFAULT_CHAT_DB, './data/chat.db')
  const store = storeFromEnv({ CHAT_DB: ':memory:' })
  t.teardown(() => store.close?.())
  t.type(store, SqliteStore)
  t.equal((store as SqliteStore).path, ':memory:')
})

t.test('a store passed in is used, and left open on close', async (t) => {
  for (const opts of [(store: MemoryStore) => ({ store }), (store: MemoryStore) => ({ chat: { store } })]) {
    const store = new MemoryStore()
    const app = await buildServer({ ...opts(store), env: { CHAT_DB: join(tmp, 'unused', 'chat.db') } })
    await app.chat.broadcast('lobby', 'kept')
    await app.close()
    t.strictSame((await store.recent('lobby', 10)).messages.map((m) => m.text), ['kept'], 'still readable after close')
  }
  await t.rejects(access(join(tmp, 'unused')), { code: 'ENOENT' }, 'CHAT_DB was not touched')
})

// The built example as a user starts it: `npm start` runs dist/example/server.js.
t.test('the example process serves, then closes every socket with 1001 on SIGTERM', { timeout: 30_000 }, async (t) => {
  const server = new URL('../dist/example/server.js', import.meta.url).pathname
  const db = join(tmp, 'process', 'chat.db')
  const child = spawn(process.execPath, [server], { env: { ...process.env, PORT: '0', HOST: '127.0.0.1', CHAT_DB: db } })
  t.teardown(() => { child.kill('SIGKILL') })
  const exited = once(child, 'exit')

  const lines = createInterface({ input: child.stdout })
  let address: string | undefined
  for await (const line of lines) {
    const match = /chat example at (http:\/\/127\.0\.0\.1:\d+)\//.exec(line)
    if (match !== null) {
      address = match[1]
      break
    }
  }
  t.ok(address, 'logs the URL it serves')
  const page = await fetch(`${address as string}/`)
  t.equal(page.status, 200)
  t.match(await page.text(), /<script type="module" src="\/app.js">/)

  const socket = new WebSocket(`${(address as string).replace('http', 'ws')}/chat?name=probe`)
  const welcome = once(socket, 'message')
  await once(socket, 'open')
  t.match(JSON.parse(String((await welcome)[0])), { type: 'welcome', name: 'probe' })
  const closed = once(socket, 'close')
  child.kill('SIGTERM')
  const [code] = await closed
  t.equal(code, 1001, 'the page is told the server is going away')
  const [exitCode] = await exited
  t.equal(exitCode, 0, 'exits cleanly once closed')
  await t.resolves(access(db), 'history went to CHAT_DB')
})
