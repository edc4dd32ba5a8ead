// One bad client must never hurt the others: each limit closes or refuses with
// the exact code, and a well-behaved client on the same server carries on.
import diagnostics from 'node:diagnostics_channel'
import { once } from 'node:events'
import { createConnection } from 'node:net'
import type { Socket } from 'node:net'
import { createRequire } from 'node:module'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type WebSocket from 'ws'
import fastifyChat, { MemoryStore } from '../index.js'
import type { AppendResult, NewMessage } from '../index.js'
import { Client, join, listen, messages, logLines, refusedWith, within } from './helpers/chat.js'

/** Proves a client still chats: its own message comes back. */
async function stillChats (t: Test, client: Client, text = 'still here'): Promise<void> {
  client.send(text)
  const frame = await client.next()
  t.match(frame, { type: 'message', text }, 'a well-behaved client still sends and receives')
}

/** The TCP socket under a ws socket, client or server side. */
function tcpOf (ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket
}

/** The server's end of `client`'s socket. */
function serverSocketOf (app: FastifyInstance, client: Client): WebSocket {
  const port = tcpOf(client.ws).localPort
  for (const socket of app.websocketServer.clients) {
    if (tcpOf(socket).remotePort === port) return socket
  }
  throw new Error(`no server socket for the client on port ${String(port)}`)
}

/**
 * Resolves once the server stops reading from `socket` (its server end).
 * ws also pauses the TCP socket on its own for a moment when a large read
 * fills its parser, so each pause is checked against ws's own flag.
 */
async function stopsReading (socket: WebSocket): Promise<void> {
  while (!socket.isPaused) await once(tcpOf(socket), 'pause')
}

/** Resolves with the first event on `channel` that passes `predicate`. */
function nextEvent<T> (t: Test, name: string, predicate: (event: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve) => {
    const handler = (event: unknown): void => {
      if (!predicate(event as T)) return
      diagnostics.unsubscribe(name, handler)
      resolve(event as T)
    }
    diagnostics.subscribe(name, handler)
    t.teardown(() => { diagnostics.unsubscribe(name, handler) })
  })
}

t.test('a frame over maxPayload closes that socket with 1009', async (t) => {
  const { app, url } = await listen(t, { maxPayload: 1024, maxMessageLength: 100_000 })
  const good = await join(url)
  const bad = await join(url)
  await good.expect('presence')
  bad.send('x'.repeat(1025))
  t.equal((await bad.closed).code, 1009)
  await good.expect('presence')
  await stillChats(t, good)
  t.equal(app.chat.stats().drops.too_large, 1)
})

t.test('maxPayload holds when the host registered @fastify/websocket', async (t) => {
  const app = Fastify()
  await app.register(fastifyWebsocket)
  await app.register(fastifyChat, { maxPayload: 1024, maxMessageLength: 100_000 })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const bad = await join(url)
  bad.send('x'.repeat(1025))
  t.equal((await bad.closed).code, 1009)
  await stillChats(t, await join(url))
})

t.test('invalid UTF-8 in a text frame closes with 1007', async (t) => {
  const { url } = await listen(t)
  const good = await join(url)
  const bad = await join(url)
  await good.expect('presence')
  bad.ws.send(Buffer.from([0x68, 0xff, 0xfe]), { binary: false })
  t.equal((await bad.closed).code, 1007)
  await good.expect('presence')
  await stillChats(t, good)
})

t.test('a binary frame closes with 1003', async (t) => {
  const { url } = await listen(t)
  const good = await join(url)
  const bad = await join(url)
  await good.expect('presence')
  bad.ws.send(Buffer.from('hi'), { binary: true })
  t.equal((await bad.closed).code, 1003)
  await good.expect('presence')
  await stillChats(t, good)
})

t.test('a peer that stops answering pings is terminated and leaves presence', async (t) => {
  // A socket is terminated when a whole interval passes without its pong.
  // The live client's pong takes a few event-loop turns, which a loaded
  // machine stretched past a 20 ms interval; 250 ms is a wide margin, and
  // the dead one is still reaped within two intervals, well inside the wait.
  const { app, url } = await listen(t, { heartbeatInterval: 250 })
  const good = await join(url, '?name=good')
  const dead = await join(url, '?name=dead', { autoPong: false })
  t.match(await good.expect('presence'), { event: 'join', user: { name: 'dead' } })
  t.match(await good.expect('presence'), { event: 'leave', user: { name: 'dead' } }, 'reaped')
  t.equal((await dead.closed).code, 1006, 'terminated, no handshake')
  await stillChats(t, good)
  t.equal(app.chat.stats().drops.dead_peer, 1)
  t.equal(app.chat.size, 1, 'the live socket answered every ping')
})

t.test('a client that stops reading is dropped with 1013, and its resume gets the latest that fits, marked not recovered', async (t) => {
  const cap = 64 * 1024
  const { app, url } = await listen(t, {
    maxBufferedBytes: cap,
    maxMessageLength: 100_000,
    historySize: 5000,
    closeTimeout: 30_000,
    rateLimit: false
  })
  const slow = await Client.connect(url, '/chat?name=slow')
  await slow.expect('welcome')
  const { epoch } = await slow.expect('joined')
  const good = await join(url, '?name=good')
  await slow.expect('presence')
  const slowEnd = serverSocketOf(app, slow)
  const received: number[] = []
  slow.ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as { type: string, offset: number }
    if (frame.type === 'message') received.push(frame.offset)
  })
  // The largest frame written: what the good client gets of each, plus the
  // 4-byte header of a frame of 126 to 65535 bytes.
  let frameBytes = 0
  good.ws.on('message', (data: Buffer) => { frameBytes = Math.max(frameBytes, data.length + 4) })
  // Stop reading: the kernel buffers fill, then the server's own buffer grows.
  const tcp = tcpOf(slow.ws)
  tcp.pause()

  const state = { dropped: false }
  const dropped = nextEvent<{ reason: string, buffered: number }>(t, 'fastify-chat:drop', (e) => e.reason === 'slow_consumer')
  dropped.then(() => { state.dropped = true }, () => {})
  const text = 'x'.repeat(50_000)
  let sent = 0
  // Bounded: at most 2000 frames of 50 kB through loopback; a few MB in practice.
  while (!state.dropped && sent < 2000) {
    await app.chat.broadcast('lobby', `${sent}:${text}`)
    sent++
    // Let the sockets write, so the good client keeps up.
    await new Promise((resolve) => setImmediate(resolve))
  }
  const { buffered } = await within(dropped)
  for (let i = 0; i < 20; i++) await app.chat.broadcast('lobby', `after ${i}`)
  sent += 20

  // The good client kept up all along and still chats. Once it has the
  // last message, every write meant for the slow one was made or refused.
  let last = 0
  while (last < sent) {
    const frame = await good.next()
    if (frame.type === 'message') last = frame.offset
  }
  await stillChats(t, good)

  // The server writes only to a socket with at most `cap` waiting, so the
  // drop finds at most `cap` plus one write. A write is one frame or one
  // batch, and a batch is written out as soon as it reaches 64 KiB: under
  // 64 KiB plus the frame that took it there. How many frames a batch gets
  // depends on how broadcasts fall into event-loop iterations (one or two
  // 50 kB frames here), so the test holds the server to the bound, not a count.
  const bound = cap + 64 * 1024 - 1 + frameBytes
  t.ok(buffered > cap && buffered <= bound, `stopped writing at the cap (${buffered} bytes waiting, at most ${bound})`)
  // Past the drop only the close frame went out: a control frame, at most 2 + 125 bytes.
  t.ok(slowEnd.bufferedAmount <= buffered + 127, `nothing more was queued (${slowEnd.bufferedAmount} bytes)`)

  tcp.resume()
  t.equal((await slow.closed).code, 1013, 'told to try again later')
  const lastSeen = received.at(-1) ?? 0
  t.ok(lastSeen < sent, `it missed messages (saw ${lastSeen} of ${sent})`)

  const back = await Client.connect(url, `/chat?name=slow&since=${epoch}:${lastSeen}`)
  await back.expect('welcome')
  const joined = await back.expect('joined')
  // What it missed is more than a socket may have waiting (that is why it
  // was dropped), so no replay can carry all of it: the joined frame holds
  // the latest messages that fit in half the cap, and says so.
  t.equal(joined.recovered, false, 'told that it missed messages')
  const replayed = joined.history.map((m) => m.offset)
  const first = replayed[0] ?? 0
  t.ok(first > lastSeen + 1, `the oldest it missed are left out (replay from ${first}, saw up to ${lastSeen})`)
  t.same(replayed, Array.from({ length: sent + 2 - first }, (_, i) => first + i), 'the latest messages, in order, up to the last one')
  t.ok(Buffer.byteLength(JSON.stringify(joined)) <= cap / 2, 'the joined frame fits in half the cap')
  t.equal(app.chat.stats().drops.slow_consumer, 1)
})

t.test('a flood is rate limited, then closed with 1008; others stay timely', async (t) => {
  const { app, url } = await listen(t, { rateLimit: { messages: 1, intervalMs: 60_000, burst: 3 } })
  const good = await join(url, '?name=good')
  const flooder = await join(url, '?name=flooder')
  await good.expect('presence')
  for (let i = 0; i < 3; i++) flooder.send(`burst ${i}`)
  for (let i = 0; i < 3; i++) {
    t.equal((await flooder.expect('message')).text, `burst ${i}`, 'the burst goes through')
    t.equal((await good.expect('message')).text, `burst ${i}`)
  }
  flooder.send({ type: 'message', text: 'one too many', cid: 'c9' })
  t.match(await flooder.expect('error'), { code: 'rate_limited', cid: 'c9' })
  flooder.send('still flooding')
  t.equal((await flooder.expect('error')).code, 'rate_limited')
  flooder.send('and again')
  t.equal((await flooder.closed).code, 1008, 'a client that keeps flooding is closed')
  t.equal((await good.expect('presence')).event, 'leave')
  const history = await app.chat.history('lobby')
  t.same(history.map((m) => m.text), ['burst 0', 'burst 1', 'burst 2'], 'nothing over the limit was broadcast')
  t.equal(app.chat.stats().drops.rate_limited, 3)
})

t.test('during a flood of thousands of frames, others keep chatting', async (t) => {
  const { url } = await listen(t)
  const good = await join(url, '?name=good')
  const flooder = await join(url, '?name=flooder')
  await good.expect('presence')
  const started = performance.now()
  // Bounded: 5000 frames, written at once.
  for (let i = 0; i < 5000; i++) flooder.ws.send(`flood ${i}`)
  good.send('timely')
  // Its message and the flooder's leave can come in either order.
  let timely = false
  let left = false
  let flooded = 0
  while (!timely || !left) {
    const frame = await good.next()
    if (frame.type === 'presence' && frame.event === 'leave') left = true
    else if (frame.type === 'message' && frame.text === 'timely') timely = true
    else if (frame.type === 'message') flooded++
  }
  const elapsed = performance.now() - started
  t.pass('the good client\'s message came back during the flood')
  t.equal((await flooder.closed).code, 1008)
  // The default bucket holds a burst of 20 and refills 10 a second: a slow
  // run lets one more through per 100 ms the flood took. (Frames still
  // queued when the flooder is closed are dropped, so often none get through.)
  const allowed = 20 + Math.floor(elapsed * 10 / 1000)
  t.ok(flooded <= allowed, `at most the default burst, plus what refilled in ${Math.round(elapsed)} ms, reached others (${flooded} of at most ${allowed})`)
  await stillChats(t, good)
})

t.test('a client that outpaces a slow store is paused, not dropped', async (t) => {
  let release = (): void => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  class SlowStore extends MemoryStore {
    override async append (message: NewMessage): Promise<AppendResult> {
      await gate
      return await super.append(message)
    }
  }
  const { app, url } = await listen(t, { store: new SlowStore(), rateLimit: false })
  const good = await join(url)
  const eager = await join(url)
  await good.expect('presence')
  // The store holds the first one, so the rest wait: the server stops reading at 64 waiting.
  const paused = stopsReading(serverSocketOf(app, eager))
  for (let i = 0; i < 300; i++) eager.send(`queued ${i}`)
  await within(paused, undefined, 'the server to stop reading')
  release()
  const texts = (await messages(good, 300)).map((m) => m.text)
  t.same(texts, Array.from({ length: 300 }, (_, i) => `queued ${i}`), 'every frame handled, in order, none dropped')
  t.equal(eager.ws.readyState, eager.ws.OPEN, 'the fast sender is still connected')
  t.equal(app.chat.stats().drops.rate_limited, 0)
})

t.test('maxConnections refuses with 503, maxConnectionsPerIp with 429, before any socket opens', async (t) => {
  const full = await listen(t, { maxConnections: 2 })
  const a = await join(full.url)
  await join(full.url)
  t.equal(await refusedWith(`${full.url}/chat`), 503)
  // The place is given back when the server's end closes, which can trail
  // the client's 'close': wait for the server's, then one try must do.
  const gone = nextEvent<{ event: string }>(t, 'fastify-chat:connection', (e) => e.event === 'closed')
  a.close()
  await within(gone)
  const again = await join(full.url)
  t.equal(again.ws.readyState, again.ws.OPEN, 'a closed socket gives its place back')
  t.equal(full.app.chat.stats().connections.refused.server_full, 1)

  const perIp = await listen(t, { maxConnectionsPerIp: 1 })
  const only = await join(perIp.url)
  t.equal(await refusedWith(`${perIp.url}/chat`), 429)
  t.equal(perIp.app.chat.stats().connections.refused.ip_full, 1)
  await stillChats(t, only)
})

t.test('a socket\'s address is read only for maxConnectionsPerIp or a diagnostics subscriber', async (t) => {
  // Node keeps the peer address on every socket asked for it: memory per
  // idle socket that nothing needs when no cap or listener uses it.
  const counted = async (opts: Parameters<typeof listen>[1]): Promise<{ reads: () => number, url: string }> => {
    let reads = 0
    const { url } = await listen(t, opts, (app) => {
      app.addHook('onRequest', async (request) => {
        Object.defineProperty(request, 'ip', { get () { reads++; return '127.0.0.1' } })
      })
    })
    return { reads: () => reads, url }
  }
  const off = await counted({})
  const a = await join(off.url)
  await stillChats(t, a)
  a.close()
  await a.closed
  t.equal(off.reads(), 0, 'no cap, no subscriber: never read')

  const capped = await counted({ maxConnectionsPerIp: 5 })
  await join(capped.url)
  t.ok(capped.reads() > 0, 'read for the per-address cap')

  const watched = await counted({})
  const accepted = nextEvent<{ event: string, ip: string }>(t, 'fastify-chat:connection', (e) => e.event === 'accepted')
  await join(watched.url)
  t.match(await within(accepted), { ip: '127.0.0.1' }, 'a subscriber gets the address')
})

t.test('a place taken by an upgrade that never becomes a chat socket is given back', async (t) => {
  let refuse = true
  const { url } = await listen(t, { maxConnections: 1, identify: () => (refuse ? false : { id: 'ok' }) }, (app) => {
    // Another plugin's hook that answers some upgrades itself.
    app.addHook('preHandler', async (request, reply) => {
      if ((request.query as { teapot?: string }).teapot !== undefined) await reply.code(418).send('no')
    })
  })
  t.equal(await refusedWith(`${url}/chat`), 403, 'identify refused it')
  refuse = false
  t.equal(await refusedWith(`${url}/chat?teapot=1`), 418, 'a hook of the host app answered it')

  // A handshake ws rejects after admission (no Sec-WebSocket-Key): the
  // socket is destroyed without a close the plugin hears of, and the next
  // admission finds it gone.
  const { port } = new URL(url)
  const raw = createConnection({ host: '127.0.0.1', port: Number(port) })
  raw.write(`GET /chat HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  raw.resume()
  await within(once(raw, 'close'))

  const client = await join(url)
  t.equal(client.ws.readyState, client.ws.OPEN, 'the one place was free for a real client')
  t.equal(await refusedWith(`${url}/chat`), 503, 'and it is taken now')
})

t.test('cross-site WebSocket hijacking: foreign and null origins get 403', async (t) => {
  const { app, url } = await listen(t)
  const host = url.replace('ws://', '')
  t.equal(await refusedWith(`${url}/chat`, { origin: 'https://evil.example' }), 403)
  t.equal(await refusedWith(`${url}/chat`, { origin: 'null' }), 403)
  t.equal(await refusedWith(`${url}/chat`, { origin: `http://${host.replace(/:\d+$/, ':1')}` }), 403, 'same host, other port')
  const same = await Client.connect(url, '/chat', { origin: `http://${host}` })
  t.equal((await same.expect('welcome')).type, 'welcome', 'same host and port is fine')
  const noOrigin = await Client.connect(url, '/chat')
  t.equal((await noOrigin.expect('welcome')).type, 'welcome', 'no Origin (not a browser) is fine')
  t.equal(app.chat.stats().connections.refused.origin, 3)

  const listed = await listen(t, { allowedOrigins: ['https://app.example'] })
  const ok = await Client.connect(listed.url, '/chat', { origin: 'https://app.example' })
  t.equal((await ok.expect('welcome')).type, 'welcome')
  t.equal(await refusedWith(`${listed.url}/chat`, { origin: `http://${listed.url.replace('ws://', '')}` }), 403, 'the list replaces the same-host rule')

  const decided = await listen(t, {
    allowedOrigins: (origin) => {
      if (origin === 'https://boom.example') throw new Error('boom')
      return origin.endsWith('.trusted.example')
    }
  })
  const yes = await Client.connect(decided.url, '/chat', { origin: 'https://a.trusted.example' })
  t.equal((await yes.expect('welcome')).type, 'welcome')
  t.equal(await refusedWith(`${decided.url}/chat`, { origin: 'https://other.example' }), 403)
  t.equal(await refusedWith(`${decided.url}/chat`, { origin: 'https://boom.example' }), 403, 'a throwing check refuses')
})

t.test('a refused Origin is logged with the origin and the host, the two sides to compare', async (t) => {
  const { lines, stream } = logLines()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(fastifyChat)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const host = `127.0.0.1:${(app.server.address() as { port: number }).port}`
  t.equal(await refusedWith(`ws://${host}/chat`, { origin: 'https://evil.example' }), 403)
  const line = lines.find((l) => l.msg === 'fastify-chat: upgrade refused')
  t.match(line, { reason: 'origin', origin: 'https://evil.example', host, reqId: String })
})

t.test('faults in identify and onMessage are answered and logged with the request id', async (t) => {
  const { lines, stream } = logLines()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(fastifyChat, {
    identify: async (request) => {
      if (request.headers['x-fail'] === 'throw') throw new Error('identify exploded')
      if (request.headers['x-fail'] === 'reject') return await Promise.reject(new Error('identify rejected'))
      return {}
    },
    onMessage: async (message) => {
      if (message.text === 'crash') throw new Error('onMessage exploded')
      return message
    }
  })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}`

  t.equal(await refusedWith(`${url}/chat`, { 'x-fail': 'throw' }), 401)
  t.equal(await refusedWith(`${url}/chat`, { 'x-fail': 'reject' }), 401)
  const client = await join(url)
  client.send({ type: 'message', text: 'crash', cid: 'k1' })
  t.match(await client.expect('error'), { code: 'internal_error', cid: 'k1' })
  await stillChats(t, client)

  for (const message of ['identify exploded', 'identify rejected', 'onMessage exploded']) {
    const line = lines.find((l) => (l.err as { message?: string } | undefined)?.message === message)
    t.ok(line, `logged: ${message}`)
    t.type(line?.reqId, 'string', 'with the request id')
  }
})

t.test('app.close() with 200 clients: every one sees 1001, within closeTimeout', async (t) => {
  const closeTimeout = 2000
  const { app, url } = await listen(t, { closeTimeout })
  // Opened 20 at a time: 200 handshakes at once on a loaded machine can keep
  // the last one waiting past the helpers' 3 s, and only the close is timed.
  const clients: Client[] = []
  while (clients.length < 200) clients.push(...await Promise.all(Array.from({ length: 20 }, () => join(url))))
  // One peer that never answers the close handshake: it is terminated at closeTimeout.
  const stuck = await join(url)
  const stuckEnd = once(serverSocketOf(app, stuck), 'close')
  tcpOf(stuck.ws).pause()
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const started = performance.now()
  await app.close()
  const took = performance.now() - started
  t.equal((await stuckEnd)[0], 1006, 'the stuck peer was terminated, not waited for')
  // Past closeTimeout come the termination and the rest of the shutdown:
  // CPU work for 200 sockets, which a loaded machine stretches to a second
  // or more. Twice closeTimeout leaves room for that and still fails on a
  // second wait, or on ws's own 30 s close timer.
  t.ok(took < 2 * closeTimeout, `closed in ${Math.round(took)} ms`)
  const codes = await Promise.all(clients.map(async (c) => (await c.closed).code))
  t.same(new Set(codes), new Set([1001]), 'every client saw 1001')
  t.equal(app.chat.size, 0)
  t.equal(app.server.listenerCount('upgrade'), 0, 'no upgrade listener left')
  const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  t.ok(timersAfter <= timersBefore, 'no timer left behind')
  tcpOf(stuck.ws).resume()
  await stuck.closed
})

t.test('stats() and the diagnostics channels', async (t) => {
  const { app, url } = await listen(t, { maxConnections: 2 })
  const accepted = nextEvent<{ event: string }>(t, 'fastify-chat:connection', (e) => e.event === 'accepted')
  const stored = nextEvent<{ room: string, offset: number }>(t, 'fastify-chat:message')
  const a = await join(url)
  await within(accepted)
  a.send('counted')
  await a.expect('message')
  t.match(await within(stored), { room: 'lobby', offset: 1 })
  const refused = nextEvent<{ event: string, reason: string }>(t, 'fastify-chat:connection', (e) => e.event === 'refused')
  await join(url)
  t.equal(await refusedWith(`${url}/chat`), 503)
  t.match(await within(refused), { reason: 'server_full' })
  const stats = app.chat.stats()
  t.match(stats, {
    open: 2,
    connections: { accepted: 2, refused: { server_full: 1, origin: 0 } },
    messagesIn: 1,
    deliveriesOut: 1,
    drops: { rate_limited: 0, slow_consumer: 0, too_large: 0, invalid: 0, dead_peer: 0 }
  })
})

t.test('deliveriesOut counts each message once per socket it reached, the skipped sender not included', async (t) => {
  for (const echo of [true, false]) {
    const { app, url } = await listen(t, { echo })
    const a = await join(url)
    const b = await join(url)
    const c = await join(url)
    // Once the joins' presence events are out, the messages' batch skips nobody (with echo on).
    await a.expect('presence')
    await a.expect('presence')
    await b.expect('presence')
    a.send('one')
    a.send('two')
    for (const reader of echo ? [a, b, c] : [b, c]) await messages(reader, 2)
    t.equal(app.chat.stats().deliveriesOut, echo ? 6 : 4, `echo ${String(echo)}`)
  }
})

t.test('the ws that @fastify/websocket loads has the 8.21 security fixes', async (t) => {
  const fromPlugin = createRequire(createRequire(import.meta.url).resolve('@fastify/websocket'))
  const version = (fromPlugin('ws/package.json') as { version: string }).version
  const [major, minor] = version.split('.').map(Number) as [number, number]
  t.ok(major === 8 && minor >= 21, `ws ${version}`)
})

t.test('when much of a room falls behind, new messages are refused with overloaded, not every reader dropped', async (t) => {
  const { app, url } = await listen(t, { maxBufferedBytes: 4 * 1024 * 1024, maxMessageLength: 100_000, rateLimit: false, closeTimeout: 30_000 })
  const sender = await join(url, '?name=sender')
  const readers = []
  for (let i = 0; i < 16; i++) readers.push(await join(url, `?name=r${i}`))
  // They all stop reading: what the server writes to them piles up.
  for (const reader of readers) tcpOf(reader.ws).pause()
  const big = 'x'.repeat(50_000)
  let refused = null
  // Bounded: at most 400 broadcasts of 50 kB (20 MB per reader, past the kernel buffers).
  // A message is refused within 20 ms of a write that found the room behind;
  // trying after every broadcast, a stall on a loaded machine that misses
  // that window costs one try out of the ~80 before a reader reaches its cap.
  for (let i = 0; i < 400 && refused === null; i++) {
    await app.chat.broadcast('lobby', big)
    sender.send({ type: 'message', text: `try ${i}`, cid: `c${i}` })
    for (;;) {
      const frame = await sender.next()
      if (frame.type === 'error') { refused = frame; break }
      if (frame.type === 'message' && frame.text === `try ${i}`) break
    }
  }
  t.match(refused, { code: 'overloaded' }, 'the sender is told')
  t.equal(app.chat.stats().drops.slow_consumer, 0, 'no reader was dropped for it')
  t.ok(app.chat.stats().drops.overloaded >= 1)
  const stored = await app.chat.history('lobby', { limit: 1000 })
  t.notOk(stored.some((m) => m.cid === refused?.cid), 'the refused message was not stored')
  for (const reader of readers) tcpOf(reader.ws).resume()
})
