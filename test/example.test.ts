import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { access, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { buildServer, DEFAULT_CHAT_DB, LISTEN_BACKLOG, MAX_MESSAGE_LENGTH, storeFromEnv, userIdOfKey } from '../example/server.js'
import type { ExampleOptions } from '../example/server.js'
import { CloseCode } from '../lib/close-codes.js'
import { MemoryStore } from '../lib/stores/memory-store.js'
import { SqliteStore } from '../lib/stores/sqlite-store.js'
import type { ServerFrame } from '../lib/protocol/wire.js'
import { Client, join as joinAs, within } from './helpers/chat.js'
import { startRedis } from './helpers/redis.js'

// Tests never write the example's ./data: each one that keeps history on
// disk gets its own temp dir, the others keep it in memory.
const tmp = await mkdtemp(join(tmpdir(), 'fastify-chat-example-'))
t.teardown(() => rm(tmp, { recursive: true, force: true }))

// The example's staff token where a test sets one; spaces, so URLs must encode it.
const STAFF_TOKEN = 'correct horse battery staple'
// A user key as the page makes one: 24 random bytes in base64url.
const USER_KEY = 'x2Yq0b_Lr7mN4kD-8sWvTfHc1uJpAeZg'

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
  // The page's own modules, served beside it.
  const modules = [...script.body.matchAll(/^import [^'"]*['"]\.\/([\w-]+\.js)['"]/gm)].map((m) => m[1] as string)
  t.ok(modules.length > 0, 'app.js imports modules of its own')
  for (const name of modules) {
    const module = await app.inject(`/${name}`)
    t.equal(module.statusCode, 200, `${name} is served`)
    t.match(module.headers['content-type'], /javascript/)
  }

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
  const imports = [...res.body.matchAll(/^import [^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1] as string)
  t.ok(imports.length > 0 && imports.every((name) => /^\.\/client\/[\w-]+\.js$/.test(name)), 'it imports only its own modules, under ./client/')
  for (const name of imports) {
    const module = await app.inject(`/chat/${name.slice(2)}`)
    t.equal(module.statusCode, 200, `${name} is served`)
  }
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

/** The backlog of the socket listening on `port`, as the kernel took it: ss shows it as the listener's Send-Q. */
async function listenBacklog (port: string): Promise<number> {
  const { stdout } = await promisify(execFile)('ss', ['-Hltn', `sport = :${port}`])
  const [, , sendQ] = stdout.trim().split(/\s+/)
  return Number(sendQ)
}

async function somaxconn (): Promise<number> {
  return Number(await readFile('/proc/sys/net/core/somaxconn', 'utf8'))
}

// The built example as a user starts it: `npm start` runs dist/example/server.js.
t.test('the example process serves, then closes every socket with 1001 on SIGTERM', { timeout: 30_000 }, async (t) => {
  const server = new URL('../dist/example/server.js', import.meta.url).pathname
  const db = join(tmp, 'process', 'chat.db')
  const child = spawn(process.execPath, [server], { env: { ...process.env, PORT: '0', HOST: '127.0.0.1', CHAT_DB: db, STAFF_TOKEN } })
  t.teardown(() => { child.kill('SIGKILL') })
  const exited = once(child, 'exit')

  const lines = createInterface({ input: child.stdout })
  const log: string[] = []
  const logEnded = once(lines, 'close')
  const address = await within(new Promise<string>((resolve) => {
    lines.on('line', (line) => {
      log.push(line)
      const match = /chat example at (http:\/\/127\.0\.0\.1:\d+)\//.exec(line)
      if (match !== null) resolve(match[1] as string)
    })
  }), 15_000, 'the URL in the log')
  t.ok(address, 'logs the URL it serves')
  t.equal(await listenBacklog(new URL(address as string).port), Math.min(LISTEN_BACKLOG, await somaxconn()), 'listens with the larger backlog')
  const page = await fetch(`${address as string}/`)
  t.equal(page.status, 200)
  t.match(await page.text(), /<script type="module" src="\/app.js">/)

  // A staff socket: its URL carries the token, which the log must not.
  const socket = new WebSocket(`${(address as string).replace('http', 'ws')}/chat?name=probe&staff=${encodeURIComponent(STAFF_TOKEN)}&key=${USER_KEY}&room=staff-x`)
  const welcome = once(socket, 'message')
  const joined = new Promise((resolve) => socket.on('message', (data) => { if (JSON.parse(String(data)).type === 'joined') resolve(JSON.parse(String(data))) }))
  await once(socket, 'open')
  t.match(JSON.parse(String((await welcome)[0])), { type: 'welcome', name: 'probe' })
  t.match(await within(joined, 3000, 'joined'), { room: 'staff-x' }, 'STAFF_TOKEN is read from the environment')
  const closed = once(socket, 'close')
  child.kill('SIGTERM')
  const [code] = await closed
  t.equal(code, 1001, 'the page is told the server is going away')
  const [exitCode] = await exited
  t.equal(exitCode, 0, 'exits cleanly once closed')
  await t.resolves(access(db), 'history went to CHAT_DB')
  await within(logEnded, 3000, 'the end of the log')
  const upgrade = log.find((line) => line.includes('/chat?name=probe'))
  t.match(upgrade, '/chat?name=probe&staff=[redacted]&key=[redacted]&room=staff-x', 'the socket\'s request is logged, its token and key blanked')
  t.notOk(log.some((line) => line.includes(encodeURIComponent(STAFF_TOKEN)) || line.includes(STAFF_TOKEN)), 'the token is in no log line')
  t.notOk(log.some((line) => line.includes(USER_KEY)), 'nor the key')
})

/** The example on a free loopback port, with its history in memory and `env` on top. */
async function served (t: Test, env: NodeJS.ProcessEnv = { STAFF_TOKEN }, opts: ExampleOptions = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = await buildServer({ ...opts, env: { CHAT_DB: ':memory:', ...env } })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, url: `ws://127.0.0.1:${port}` }
}

function post (app: FastifyInstance, url: string, body: unknown, token: string | null = STAFF_TOKEN) {
  return app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    payload: typeof body === 'string' ? body : JSON.stringify(body)
  })
}

/** Connects with `query`, reads welcome and the auto-join's joined, and returns the client with its user id. */
async function member (url: string, query: string): Promise<{ client: Client, id: string }> {
  const client = await Client.connect(url, `/chat${query}`)
  const welcome = await client.expect('welcome')
  await client.expect('joined')
  return { client, id: welcome.id }
}

t.test('the staff routes answer 403 without the staff token, before reading the body', async (t) => {
  const { app } = await served(t)
  const wrong = [
    {},
    { authorization: 'Bearer wrong' },
    { authorization: `Bearer ${STAFF_TOKEN}x` },
    { authorization: `Bearer ${STAFF_TOKEN.slice(0, -1)}` },
    { authorization: `Basic ${STAFF_TOKEN}` },
    { authorization: STAFF_TOKEN },
    { authorization: 'Bearer ' }
  ]
  for (const headers of wrong) {
    for (const [method, url] of [['GET', '/staff/check'], ['POST', '/staff/remove'], ['POST', '/staff/kick']] as const) {
      // A body that would be refused with 400: the token is checked first.
      const res = await app.inject({ method, url, headers: { ...headers, 'content-type': 'application/json' }, payload: method === 'POST' ? '{}' : undefined })
      t.equal(res.statusCode, 403, `${method} ${url} with ${JSON.stringify(headers)}`)
    }
  }
  const ok = await app.inject({ url: '/staff/check', headers: { authorization: `Bearer ${STAFF_TOKEN}` } })
  t.equal(ok.statusCode, 204, 'the right token passes')
})

t.test('the staff routes answer 400 for a bad body, and act on nobody', async (t) => {
  const { app, url } = await served(t)
  const bob = await member(url, '?name=bob')
  const bad: Array<[string, unknown, string]> = [
    ['/staff/kick', {}, 'FST_ERR_VALIDATION'],
    ['/staff/kick', { userId: '' }, 'FST_ERR_VALIDATION'],
    ['/staff/kick', { userId: { id: bob.id } }, 'FST_ERR_VALIDATION'],
    ['/staff/kick', { userId: 'x'.repeat(129) }, 'FST_ERR_VALIDATION'],
    ['/staff/kick', { userId: bob.id, reason: 'x'.repeat(124) }, 'FST_ERR_VALIDATION'],
    ['/staff/kick', '{"userId":', 'FST_ERR_CTP_INVALID_JSON_BODY'],
    ['/staff/remove', { userId: bob.id }, 'FST_ERR_VALIDATION'],
    ['/staff/remove', { room: 'lobby' }, 'FST_ERR_VALIDATION'],
    ['/staff/remove', { room: 'x'.repeat(65), userId: bob.id }, 'FST_ERR_VALIDATION'],
    // Past the schema, app.chat refuses these: its errors are answered with 400 too.
    ['/staff/remove', { room: 'no spaces', userId: bob.id }, 'FST_CHAT_INVALID_ROOM'],
    // 100 characters, 200 bytes: more than a close frame's reason holds.
    ['/staff/kick', { userId: bob.id, reason: 'é'.repeat(100) }, 'FST_CHAT_INVALID_ARGUMENT'],
    ['/staff/remove', { room: 'lobby', userId: bob.id, reason: 'é'.repeat(100) }, 'FST_CHAT_INVALID_ARGUMENT']
  ]
  for (const [route, body, code] of bad) {
    const res = await post(app, route, body)
    t.equal(res.statusCode, 400, `${route} ${JSON.stringify(body)}`)
    t.equal(res.json().code, code)
  }
  // Nothing reached bob: the next frame he gets is this marker.
  await app.chat.broadcast('lobby', 'marker')
  t.match(await bob.client.next(), { type: 'message', text: 'marker' }, 'bob is still in the room and connected')
})

t.test('POST /staff/remove takes a user out of a room: they are told, the others see them leave', async (t) => {
  const { app, url } = await served(t)
  const alice = await member(url, '?name=alice')
  const bob = await member(url, '?name=bob')
  t.match(await alice.client.expect('presence'), { event: 'join', user: { name: 'bob' } })

  const res = await post(app, '/staff/remove', { room: 'lobby', userId: bob.id, reason: 'off topic' })
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { removed: 1 })
  t.strictSame(await bob.client.expect('left'), { type: 'left', room: 'lobby', reason: 'removed', message: 'off topic' })
  t.match(await alice.client.expect('presence'), { room: 'lobby', event: 'leave', user: { id: bob.id } })

  // Still connected, no longer in the room.
  bob.client.send({ type: 'message', room: 'lobby', text: 'still here?', cid: 'c1' })
  t.match(await bob.client.expect('error'), { code: 'not_in_room', cid: 'c1' })
  t.strictSame((await app.chat.presence('lobby')).users, [{ id: alice.id, name: 'alice' }])

  const again = await post(app, '/staff/remove', { room: 'lobby', userId: bob.id })
  t.strictSame(again.json(), { removed: 0 }, 'nobody left to remove')
})

t.test('POST /staff/kick closes every socket of a user with 4000 and the reason', async (t) => {
  const { app, url } = await served(t)
  const alice = await member(url, '?name=alice')
  const bob = await Client.connect(url, '/chat?name=bob')
  const welcome = await bob.expect('welcome')
  await bob.expect('joined')
  // A second tab of bob's: the same user through his resume token.
  const tab = await joinAs(url, `?resume=${encodeURIComponent(welcome.resume as string)}`)

  const res = await post(app, '/staff/kick', { userId: welcome.id, reason: 'spam' })
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { disconnected: 2 })
  t.strictSame(await within(bob.closed, 3000, 'bob closed'), { code: CloseCode.DISCONNECTED, reason: 'spam' })
  t.strictSame(await within(tab.closed, 3000, 'the tab closed'), { code: CloseCode.DISCONNECTED, reason: 'spam' })

  const plain = await post(app, '/staff/kick', { userId: alice.id })
  t.strictSame(plain.json(), { disconnected: 1 })
  t.strictSame(await within(alice.client.closed, 3000, 'alice closed'), { code: CloseCode.DISCONNECTED, reason: 'disconnected' }, 'no reason given: the default')
})

t.test('staff- rooms: a client with ?staff=<STAFF_TOKEN> may join; others get forbidden', async (t) => {
  const { url } = await served(t)
  for (const query of ['?name=guest', '?name=guest&staff=wrong', `?name=guest&staff=${encodeURIComponent(STAFF_TOKEN)}x`]) {
    const guest = await member(url, query)
    guest.client.send({ type: 'join', room: 'staff-x' })
    t.strictSame(await guest.client.expect('error'), { type: 'error', code: 'forbidden', message: 'not allowed in room "staff-x"', room: 'staff-x' }, query)
    // Another room is still open to them.
    guest.client.send({ type: 'join', room: 'public-x' })
    t.match(await guest.client.expect('joined'), { room: 'public-x' })
    guest.client.close()

    // The auto-join from ?room= is asked too.
    const direct = await Client.connect(url, `/chat${query}&room=staff-x`)
    await direct.expect('welcome')
    t.match(await direct.expect('error'), { code: 'forbidden', room: 'staff-x' }, `${query}&room=staff-x`)
    direct.close()
  }

  const staff = await Client.connect(url, `/chat?name=boss&staff=${encodeURIComponent(STAFF_TOKEN)}&room=staff-x`)
  const welcome = await staff.expect('welcome')
  t.type(welcome.resume, 'string', 'identify gives no id: the resume token still does')
  t.match(await staff.expect('joined'), { room: 'staff-x', users: [{ name: 'boss' }] })
  staff.send({ type: 'message', room: 'staff-x', text: 'staff only', cid: 's1' })
  t.match(await staff.expect('message'), { room: 'staff-x', text: 'staff only', cid: 's1' })
  staff.close()
})

t.test('no STAFF_TOKEN (or an empty one): nobody is staff', async (t) => {
  for (const env of [{}, { STAFF_TOKEN: '' }]) {
    // The test process may have one set: the example reads only the env it is given.
    const { app, url } = await served(t, env)
    for (const token of ['', 'undefined', 'null']) {
      const check = await app.inject({ url: '/staff/check', headers: { authorization: `Bearer ${token}` } })
      t.equal(check.statusCode, 403, `${JSON.stringify(env)}: Bearer ${JSON.stringify(token)}`)
      const kick = await post(app, '/staff/kick', { userId: 'anyone' }, token)
      t.equal(kick.statusCode, 403)
      const client = await Client.connect(url, `/chat?staff=${token}&room=staff-x`)
      await client.expect('welcome')
      t.match(await client.expect('error'), { code: 'forbidden', room: 'staff-x' }, `?staff=${token}`)
      client.close()
    }
  }
})

t.test('with Redis unreachable, a kick answers 503', { timeout: 30_000 }, async (t) => {
  const redis = await startRedis(t)
  const { app, url } = await served(t, { STAFF_TOKEN, REDIS_URL: redis.url })
  const bob = await member(url, '?name=bob')
  await redis.stop()
  const res = await post(app, '/staff/kick', { userId: bob.id })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'FST_CHAT_ADAPTER_UNAVAILABLE')
  const removed = await post(app, '/staff/remove', { room: 'lobby', userId: bob.id })
  t.equal(removed.statusCode, 503)
})

t.test('a page\'s key makes its sockets one user, whose read positions the server keeps; no key or a malformed one is a guest', async (t) => {
  const { app, url } = await served(t)
  const first = await Client.connect(url, `/chat?name=bob&key=${USER_KEY}`)
  const welcome = await first.expect('welcome')
  t.equal(welcome.id, userIdOfKey(USER_KEY), 'the id is the key\'s hash')
  t.not(welcome.id, USER_KEY, 'and never the key itself')
  t.equal(welcome.resume, undefined, 'identify gives the id: no resume token')
  await first.expect('joined')
  // A second tab: the same user, told of the first one's read.
  const second = await Client.connect(url, `/chat?name=bob&key=${USER_KEY}`)
  t.equal((await second.expect('welcome')).id, welcome.id)
  await second.expect('joined')
  await app.chat.broadcast('lobby', 'one')
  t.match(await first.expect('message'), { text: 'one' })
  t.match(await second.expect('message'), { text: 'one' })
  first.send({ type: 'read', room: 'lobby', offset: 1 })
  t.match(await second.expect('read'), { room: 'lobby', offset: 1 })
  await app.chat.broadcast('lobby', 'two')
  t.same(await app.chat.unread(welcome.id), { lobby: 1 }, 'the server counts what is after the position')
  first.close()
  second.close()
  const third = await Client.connect(url, `/chat?name=bob&key=${USER_KEY}`)
  await third.expect('welcome')
  t.match(await third.expect('joined'), { room: 'lobby', read: 1, unread: 1 }, 'the position outlives the sockets')
  third.close()

  for (const key of ['', 'short', `${USER_KEY}!`, 'x'.repeat(129)]) {
    const guest = await Client.connect(url, `/chat?name=guest&key=${encodeURIComponent(key)}`)
    const hello = await guest.expect('welcome')
    t.type(hello.resume, 'string', `key ${JSON.stringify(key)}: a guest, with a resume token`)
    t.not(hello.id, userIdOfKey(key))
    guest.close()
  }
})
