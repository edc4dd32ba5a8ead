import { once } from 'node:events'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import WebSocket, { WebSocketServer } from 'ws'
import type { ServerOptions } from 'ws'
import fastifyChat from '../../index.js'
import type { FastifyChatOptions, ServerFrame } from '../../index.js'

/** The subset of tap's `t` the helpers need. */
interface Teardown { teardown (fn: () => unknown): void }

const WAIT_MS = 3000

/**
 * A bare ws server on a free loopback port and one client connected to it
 * (no plugin): both ends of a real socket, both closed when the test ends.
 */
export async function wsPair (t: Teardown, server: ServerOptions = {}, client: WebSocket.ClientOptions = {}): Promise<{ server: WebSocket, client: WebSocket }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', ...server })
  t.teardown(() => new Promise((resolve) => wss.close(resolve)))
  await once(wss, 'listening')
  const { port } = wss.address() as { port: number }
  const accepted = once(wss, 'connection')
  const socket = new WebSocket(`ws://127.0.0.1:${port}`, client)
  t.teardown(() => socket.terminate())
  socket.on('error', () => {})
  const [end] = await accepted as [WebSocket]
  end.on('error', () => {})
  await once(socket, 'open')
  return { server: end, client: socket }
}

/** A fresh app with the plugin, listening on a free loopback port, closed when the test ends. */
export async function listen (t: Teardown, opts: FastifyChatOptions = {}, setup?: (app: FastifyInstance) => unknown): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  // Leaves are announced at once unless a test is about the grace period.
  await app.register(fastifyChat, { presenceGraceMs: 0, ...opts })
  await setup?.(app)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, url: `ws://127.0.0.1:${address.port}` }
}

/** An `identify` for tests: `?user=bob` is user `bob`, named `Bob`; no user, no socket. */
export function userFromQuery (request: { query: unknown }): { id: string, name: string } | false {
  const { user } = request.query as { user?: unknown }
  if (typeof user !== 'string' || user === '') return false
  return { id: user, name: user.charAt(0).toUpperCase() + user.slice(1) }
}

/** The HTTP status a refused upgrade answered with. */
export async function refusedWith (url: string, headers: Record<string, string> = {}): Promise<number> {
  const ws = new WebSocket(url, { headers })
  ws.on('error', () => {})
  const [, response] = await within(once(ws, 'unexpected-response'), WAIT_MS, 'a refusal') as [unknown, { statusCode: number }]
  ws.terminate()
  return response.statusCode
}

/** Rejects after `ms` unless `promise` settles first; the timer never outlives the wait. */
export async function within<T> (promise: Promise<T>, ms = WAIT_MS, what = 'event'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A real `ws` client that queues every frame it receives, so tests can await them in order. */
export class Client {
  readonly ws: WebSocket
  readonly frames: ServerFrame[] = []
  readonly closed: Promise<{ code: number, reason: string }>
  #waiters: Array<(frame: ServerFrame) => void> = []

  constructor (ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as ServerFrame
      const waiter = this.#waiters.shift()
      if (waiter === undefined) this.frames.push(frame)
      else waiter(frame)
    })
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))
    })
    // Errors surface as the close code; a listener keeps them from throwing.
    ws.on('error', () => {})
  }

  /** Opens a socket to `url` + `path` and waits for the `welcome` frame (kept in the queue). */
  static async connect (url: string, path = '/chat', headers?: Record<string, string>, options: WebSocket.ClientOptions = {}): Promise<Client> {
    const ws = new WebSocket(url + path, { ...options, ...(headers === undefined ? {} : { headers }) })
    const client = new Client(ws)
    await within(once(ws, 'open'), WAIT_MS, 'open')
    return client
  }

  /** The next frame, whatever it is. */
  async next (what = 'a frame'): Promise<ServerFrame> {
    const queued = this.frames.shift()
    if (queued !== undefined) return queued
    return await within(new Promise<ServerFrame>((resolve) => this.#waiters.push(resolve)), WAIT_MS, what)
  }

  /** The next frame, which must be of `type`. */
  async expect<T extends ServerFrame['type']> (type: T): Promise<Extract<ServerFrame, { type: T }>> {
    const frame = await this.next(`a ${type} frame`)
    if (frame.type !== type) throw new Error(`expected a ${type} frame, got ${JSON.stringify(frame)}`)
    return frame as Extract<ServerFrame, { type: T }>
  }

  send (frame: string | object): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  close (): void {
    this.ws.close()
  }
}

/** Connects and reads `welcome` and the auto-join's `joined`. */
export async function join (url: string, query = '', options: WebSocket.ClientOptions = {}): Promise<Client> {
  const client = await Client.connect(url, `/chat${query}`, undefined, options)
  await client.expect('welcome')
  await client.expect('joined')
  return client
}

/** A socket of user `id` (see {@link userFromQuery}) past its welcome, closed when the test ends. */
export async function userSocket (t: Teardown, url: string, id: string): Promise<Client> {
  const client = await Client.connect(url, `/chat?user=${id}`)
  t.teardown(() => client.close())
  await client.expect('welcome')
  return client
}

/** Reads frames until `count` messages have arrived; returns their offsets and texts. */
export async function messages (client: Client, count: number): Promise<Array<{ offset: number, text: string }>> {
  const out: Array<{ offset: number, text: string }> = []
  while (out.length < count) {
    const frame = await client.next()
    if (frame.type === 'message') out.push({ offset: frame.offset, text: frame.text })
  }
  return out
}

/** A log stream for Fastify's logger, and the lines it has received, parsed. */
export function logLines (): { lines: Array<Record<string, unknown>>, stream: Writable } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  return { lines, stream }
}
