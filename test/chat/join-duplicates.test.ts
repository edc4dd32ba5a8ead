// No duplicate at join, whatever the adapter: clients join one room while a
// publisher sends 2000 messages a second, and each must see every offset
// after its `joined` exactly once, in order. With Redis the history a join
// reads can hold a message that pub/sub has yet to bring to the server the
// client is on; that message must not reach the client again, live.
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import t from 'tap'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { redisAdapter } from '../../index.js'
import type { FastifyChatOptions, RedisAdapterOptions, ServerFrame } from '../../index.js'
import type { FastifyInstance } from 'fastify'
import { listen, within } from '../helpers/chat.js'
import { startRedis } from '../helpers/redis.js'

const CLIENTS = 200
// 20 messages every 10 ms: 2000 a second, with two sockets opened per tick,
// for at least a second and until every client has joined (at most three).
const TICK_MS = 10
const PER_TICK = 20
const JOINS_PER_TICK = 2
const MIN_MESSAGES = 2000
const MAX_MESSAGES = 6000
const ROOM = 'dup'
// A message frame as the server encodes it (type first, then room, then offset).
const LIVE_OFFSET = new RegExp(`^\\{"type":"message","room":"${ROOM}","offset":(\\d+),`)

/** One client: the `joined` it got, and what broke the promise, if anything. */
class Watcher {
  readonly ws: WebSocket
  joined: { epoch: string, offset: number } | null = null
  // The offset the next message must have.
  #next = 0
  readonly faults: string[] = []
  #waiting: { last: number, resolve: () => void } | null = null
  #closed: string | null = null

  constructor (url: string) {
    // Two hundred of these share the test's process with both servers: each frame is read as cheaply as can be.
    this.ws = new WebSocket(`${url}/chat?room=${ROOM}`, { skipUTF8Validation: true })
    this.ws.on('error', () => {})
    this.ws.on('message', (data: Buffer) => {
      const text = data.toString()
      const offset = LIVE_OFFSET.exec(text)
      if (offset !== null) this.#message(Number(offset[1]))
      else this.#receive(JSON.parse(text) as ServerFrame)
      if (this.#waiting !== null && this.#reached(this.#waiting.last)) this.#waiting.resolve()
    })
    this.ws.once('close', (code, reason) => {
      this.#closed = `${code} ${reason.toString()}`
      this.#waiting?.resolve()
    })
  }

  get gone (): boolean {
    return this.#closed !== null
  }

  #reached (last: number): boolean {
    return this.joined !== null && this.#next > last
  }

  /** Settles once the client has seen offset `last` (in its `joined` or live), or its socket closed. */
  async until (last: number): Promise<void> {
    if (!this.#reached(last) && this.#closed === null) await new Promise<void>((resolve) => { this.#waiting = { last, resolve } })
    if (!this.#reached(last)) this.faults.push(`closed (${String(this.#closed)}) before offset ${last}`)
  }

  #receive (frame: ServerFrame): void {
    if (frame.type === 'joined') {
      if (this.joined !== null) this.faults.push(`a second joined at ${frame.offset}`)
      this.joined = { epoch: frame.epoch, offset: frame.offset }
      this.#next = frame.offset + 1
    } else if (frame.type === 'message') {
      this.#message(frame.offset)
    }
  }

  #message (offset: number): void {
    if (this.joined === null) this.faults.push(`offset ${offset} before joined`)
    else if (offset !== this.#next) this.faults.push(`offset ${offset} where ${this.#next} was due (joined at ${this.joined.offset})`)
    this.#next = Math.max(this.#next, offset + 1)
  }
}

/**
 * A proxy in front of Redis that delivers what Redis sends a subscriber
 * connection `lagMs` late (in order), and everything else at once: pub/sub
 * then arrives after the replies to later commands, as it can between
 * machines. Returns its redis:// URL.
 */
async function laggingProxy (t: Test, target: number, lagMs: number): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1')
    let subscriber = false
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.once('close', () => {
        sockets.delete(socket)
        client.destroy()
        upstream.destroy()
      })
    }
    client.on('data', (chunk: Buffer) => {
      // RESP: the command name as a bulk string.
      subscriber ||= /\$9\r\nsubscribe\r\n/i.test(chunk.toString('latin1'))
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (subscriber) setTimeout(() => client.write(chunk), lagMs)
      else client.write(chunk)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    server.close()
    await once(server, 'close')
  })
  return `redis://127.0.0.1:${(server.address() as { port: number }).port}`
}

async function pause (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Publishes through `publisher` at 2000 messages a second while CLIENTS
 * clients join, spread over `urls`; then waits until every client has seen
 * the last message and checks what each saw.
 */
async function run (t: Test, publisher: FastifyInstance, urls: string[]): Promise<void> {
  const watchers: Watcher[] = []
  t.teardown(() => { for (const w of watchers) w.ws.terminate() })
  let published = 0
  const publish = async (): Promise<void> => {
    const batch = Array.from({ length: PER_TICK }, async () => await publisher.chat.broadcast(ROOM, `m${published++}`))
    await within(Promise.all(batch), 30_000, 'the publishes')
  }
  // Until every client has joined (or its socket closed), within a bound.
  const flowing = (): boolean => published < MAX_MESSAGES &&
    (published < MIN_MESSAGES || watchers.length < CLIENTS || watchers.some((w) => w.joined === null && !w.gone))
  const started = performance.now()
  for (let i = 1; flowing(); i++) {
    for (let j = 0; j < JOINS_PER_TICK && watchers.length < CLIENTS; j++) watchers.push(new Watcher(urls[watchers.length % urls.length]))
    // Each tick's messages are stored before the next tick's are sent: a busy
    // machine slows the publisher down rather than piling messages up.
    await publish()
    // A timer even when late: the sockets' I/O must get its turn.
    await pause(Math.max(0, started + i * TICK_MS - performance.now()))
  }
  // And some after the last join, which every client must see live.
  await publish()
  const last = published
  await within(Promise.all(watchers.map(async (w) => await w.until(last))), 30_000, 'every client to see the last message')

  t.equal(watchers.length, CLIENTS)
  const faulty = watchers.filter((w) => w.faults.length > 0)
  t.equal(faulty.length, 0, `clients that saw an offset twice, out of order or not at all: ${faulty.slice(0, 3).map((w) => w.faults.slice(0, 3).join('; ')).join(' | ')}`)
  const epochs = new Set(watchers.map((w) => w.joined?.epoch))
  t.equal(epochs.size, 1, 'one epoch throughout')
  const midway = watchers.filter((w) => w.joined !== null && w.joined.offset > 0 && w.joined.offset < last).length
  t.equal(midway, CLIENTS, `every client joined while messages were flowing (${last} published)`)
  await Promise.all(watchers.map(async (w) => {
    w.ws.close()
    if (w.ws.readyState !== WebSocket.CLOSED) await once(w.ws, 'close')
  }))
}

// The clients read in the servers' own process, which a busy machine can stall
// for a while: they are not to be dropped as slow readers meanwhile.
const options: FastifyChatOptions = { defaultRoom: null, maxMessageLength: 100, maxBufferedBytes: 64 << 20 }

t.test(`in memory: ${CLIENTS} joins under 2000 msg/s see every offset after their joined once, in order`, async (t) => {
  const { app, url } = await listen(t, options)
  await run(t, app, [url])
})

t.test(`with Redis and two servers: ${CLIENTS} joins under 2000 msg/s see every offset after their joined once, in order`, async (t) => {
  const redis = await startRedis(t)
  const adapter = (url: string): FastifyChatOptions['adapter'] => redisAdapter({ url, presenceTtlMs: 600 } as RedisAdapterOptions)
  const a = await listen(t, { ...options, adapter: adapter(redis.url) })
  // B's pub/sub lags its commands by 50 ms: its joins read history that pub/sub has yet to bring.
  const b = await listen(t, { ...options, adapter: adapter(await laggingProxy(t, redis.port, 50)) })
  await run(t, a.app, [a.url, b.url])
})
