// Fails loudly when a ws or @fastify/websocket upgrade moves what lib/transport/ws-internals.ts uses.
import { once } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { dropRouteErrorHandler, releaseUpgradeHead, releaseUpgradeResponse, setMaxPayload, untrackClient } from '../../lib/transport/ws-internals.js'
import fastifyChat from '../../index.js'
import { join, wsPair } from '../helpers/chat.js'

// A real collector, to show what a socket no longer keeps alive.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Whether `ref`'s object is collected within a few full collections (a WeakRef clears only between jobs). */
async function collected (ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 10 && ref.deref() !== undefined; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    gc()
  }
  return ref.deref() === undefined
}

/** The HTTP response of every request `app` routes from now on: for an upgrade, @fastify/websocket hangs it on the TCP socket. */
function responsesOf (app: FastifyInstance): Array<WeakRef<object>> {
  const responses: Array<WeakRef<object>> = []
  app.addHook('onRequest', (_request, reply, done) => {
    responses.push(new WeakRef(reply.raw))
    done()
  })
  return responses
}

/** Listens on a free loopback port; resolves with the port. */
async function portOf (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as { port: number }).port
}

/** A client of the route at `path` on `port`, once it has the route's first message; terminated when the test ends. */
async function greeted (t: Test, port: number, path = '/'): Promise<WebSocket> {
  const client = new WebSocket(`ws://127.0.0.1:${port}${path}`)
  t.teardown(() => client.terminate())
  await once(client, 'message')
  return client
}

/** A message sent on `client` comes back: the socket still works. */
async function echoes (t: Test, client: WebSocket): Promise<void> {
  const echoed = once(client, 'message')
  client.send('the socket still works')
  t.equal(String((await echoed)[0]), 'the socket still works')
}

/** A client of the chat route of `app`, past its welcome and joined; closed when the test ends. */
async function chatClient (t: Test, app: FastifyInstance): Promise<void> {
  const client = await join(`ws://127.0.0.1:${await portOf(app)}`)
  t.teardown(() => client.close())
}

t.test('setMaxPayload reaches the receiver of a real socket', async (t) => {
  const { server, client } = await wsPair(t, { maxPayload: 1 << 20 })
  t.equal(setMaxPayload(server, 8), true, 'ws still has _receiver._maxPayload: if this fails, update lib/transport/ws-internals.ts')
  const closed = once(client, 'close')
  client.send('more than eight bytes')
  t.equal((await closed)[0], 1009, 'and the receiver enforces it')
})

t.test('without the internals it says so instead of throwing', async (t) => {
  t.equal(setMaxPayload({} as WebSocket, 8), false)
  t.equal(setMaxPayload({ _receiver: { _maxPayload: 'x' } } as unknown as WebSocket, 8), false)
})

t.test('rawSocketOf finds the stream under a socket, and frames written to it arrive in order', async (t) => {
  const { Batch } = await import('../../lib/chat/batch.js')
  const { rawSocketOf } = await import('../../lib/transport/ws-internals.js')
  const { server, client } = await wsPair(t)
  const raw = rawSocketOf(server)
  t.ok(raw, 'ws still has _socket and _sender: if this fails, update lib/transport/ws-internals.ts')
  const got: string[] = []
  const three = new Promise<void>((resolve) => client.on('message', (data) => { if (got.push(data.toString()) === 3) resolve() }))
  const framed = (text: string): Buffer => {
    const batch = new Batch()
    batch.add(text, null, null, null)
    return batch.frames
  }
  raw?.write(framed('one'))
  server.send('two')
  raw?.write(framed('three'))
  await three
  t.same(got, ['one', 'two', 'three'], 'pre-framed writes and ws.send() keep their order')
  client.close()
  await once(client, 'close')
})

t.test('rawSocketOf refuses a socket with compression, so frames go through ws', async (t) => {
  const { rawSocketOf } = await import('../../lib/transport/ws-internals.js')
  const { server, client } = await wsPair(t, { perMessageDeflate: true }, { perMessageDeflate: true })
  t.equal(server.extensions, 'permessage-deflate')
  t.equal(rawSocketOf(server), null)
  t.equal(rawSocketOf({ extensions: '' } as WebSocket), null, 'no internals, no raw socket')
  client.close()
  await once(client, 'close')
})

t.test('releaseUpgradeResponse detaches the response @fastify/websocket hangs on the socket', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWebsocket)
  const responses: Array<{ socket: unknown }> = []
  const released: boolean[] = []
  app.get('/', {
    websocket: true,
    onRequest: (_request, reply, done) => {
      responses.push(reply.raw)
      done()
    }
  }, (socket) => {
    released.push(releaseUpgradeResponse(socket))
    socket.on('message', (data) => socket.send(data.toString()))
    socket.send('hi')
  })
  const client = await greeted(t, await portOf(app))
  t.same(released, [true], 'the stream still has _httpMessage: if this fails, update lib/transport/ws-internals.ts')
  t.equal(responses.length, 1)
  t.equal(responses[0]?.socket, null, 'the response no longer points at the socket, nor the socket at it')
  await echoes(t, client)
})

t.test('releaseUpgradeResponse leaves alone what it does not recognise', async (t) => {
  t.equal(releaseUpgradeResponse({} as WebSocket), false)
  const stream = {}
  let detached = 0
  const elsewhere = { socket: {}, detachSocket: () => { detached++ } }
  t.equal(releaseUpgradeResponse({ _socket: { ...stream, _httpMessage: elsewhere } } as unknown as WebSocket), false, 'a response attached to another socket')
  t.equal(releaseUpgradeResponse({ _socket: { _httpMessage: { socket: null } } } as unknown as WebSocket), false, 'no detachSocket')
  t.equal(detached, 0)
})

t.test('a chat socket keeps no upgrade response once it is open', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const responses = responsesOf(app)
  await app.register(fastifyChat)
  await chatClient(t, app)
  t.equal(responses.length, 1)
  t.equal(await collected(responses[0] as WeakRef<object>), true)
})

/** The upgrade bytes @fastify/websocket keeps on a raw request, if any. */
function headOf (raw: object): unknown {
  const key = Object.getOwnPropertySymbols(raw).find((symbol) => symbol.description === 'ws-head')
  return key === undefined ? undefined : (raw as Record<symbol, unknown>)[key]
}

t.test('releaseUpgradeHead drops the upgrade bytes @fastify/websocket keeps on the request', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWebsocket)
  const seen: Array<{ before: boolean, released: boolean, after: unknown }> = []
  app.get('/', { websocket: true }, (socket, request) => {
    const before = Buffer.isBuffer(headOf(request.raw))
    const released = releaseUpgradeHead(request.raw)
    seen.push({ before, released, after: headOf(request.raw) })
    socket.on('message', (data) => socket.send(data.toString()))
    socket.send('hi')
  })
  const client = await greeted(t, await portOf(app))
  t.same(seen, [{ before: true, released: true, after: undefined }], 'the request still has a ws-head Buffer: if this fails, update lib/transport/ws-internals.ts')
  await echoes(t, client)
})

t.test('releaseUpgradeHead leaves alone what it does not recognise', async (t) => {
  t.equal(releaseUpgradeHead({}), false)
  const other = { [Symbol('ws-head')]: 'not a buffer' }
  t.equal(releaseUpgradeHead(other), false)
  t.equal(headOf(other), 'not a buffer')
})

t.test('a chat socket\'s request keeps no upgrade bytes once it is open', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const raws: object[] = []
  app.addHook('onRequest', (request, _reply, done) => {
    raws.push(request.raw)
    done()
  })
  await app.register(fastifyChat)
  await chatClient(t, app)
  t.equal(raws.length, 1)
  t.equal(headOf(raws[0] as object), undefined)
})

t.test('dropRouteErrorHandler takes off the listener that terminates and logs at error level', async (t) => {
  const errors: string[] = []
  const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => { errors.push(line) } } } })
  t.teardown(() => app.close())
  await app.register(fastifyWebsocket, { options: { maxPayload: 16 } })
  const listeners: number[] = []
  app.get('/:drop', { websocket: true }, (socket, request) => {
    listeners.push(socket.listenerCount('error'))
    if ((request.params as { drop: string }).drop === 'yes') dropRouteErrorHandler(socket)
    socket.on('error', () => {})
    socket.send('ready')
  })
  const port = await portOf(app)
  const oversize = async (drop: string): Promise<number> => {
    const client = await greeted(t, port, `/${drop}`)
    client.on('error', () => {})
    const closed = once(client, 'close')
    client.send('more than sixteen bytes')
    return (await closed)[0] as number
  }
  // The client may see 1009 either way: ws queues its close frame before
  // the handler terminates, and on loopback it usually gets out first.
  t.ok([1006, 1009].includes(await oversize('no')))
  t.equal(errors.length, 1, '@fastify/websocket\'s own handler logs each client protocol error at error level')
  t.equal(await oversize('yes'), 1009, 'ws closes the socket itself')
  t.equal(errors.length, 1, 'without it, nothing more is logged at error level')
  t.same(listeners, [1, 1], '@fastify/websocket still adds one error listener per socket: if this fails, update lib/transport/ws-internals.ts')
})

t.test('untrackClient takes a socket out of the host\'s client set', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyWebsocket)
  const tracked: boolean[] = []
  app.get('/', { websocket: true }, (socket) => {
    tracked.push(app.websocketServer.clients.has(socket))
    untrackClient(app.websocketServer, socket)
    tracked.push(app.websocketServer.clients.has(socket))
    socket.send('ready')
  })
  await greeted(t, await portOf(app))
  t.same(tracked, [true, false], 'the server still tracks clients in a Set: if this fails, update lib/transport/ws-internals.ts')
})
