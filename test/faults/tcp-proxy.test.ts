// The fault tests' TCP proxy: it forwards, a cut drops every connection and
// refuses new ones for its duration, and afterwards it forwards again.
import { once } from 'node:events'
import type { EventEmitter } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import { Redis } from 'ioredis'
import t from 'tap'
import type { Test } from 'tap'
import { within } from '../helpers/chat.js'
import { startRedis } from '../helpers/redis.js'
import { startProxy } from '../helpers/tcp-proxy.js'

/** An echo server on a free loopback port, closed when the test ends. */
async function echoServer (t: Test): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return (server.address() as { port: number }).port
}

/** Connects to `port`; resolves with the socket and what it reads until it closes. */
async function open (port: number): Promise<{ socket: Socket, read: Promise<string> }> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  let data = ''
  socket.on('data', (chunk: Buffer) => { data += chunk.toString() })
  const read = new Promise<string>((resolve) => socket.once('close', () => resolve(data)))
  await within(once(socket, 'connect'), 3000, 'connect')
  return { socket, read }
}

/** The next `event`, ignoring `error` events (which `once` would reject with). */
async function next (emitter: EventEmitter, event: string, what: string): Promise<unknown> {
  return await within(new Promise((resolve) => emitter.once(event, resolve)), 3000, what)
}

async function echoed (socket: Socket, text: string): Promise<string> {
  const reply = within(once(socket, 'data'), 3000, 'the echo')
  socket.write(text)
  return String((await reply)[0])
}

t.test('forwards both ways, drops everything during a cut, and forwards again after it', async (t) => {
  const proxy = await startProxy(t, await echoServer(t))
  const before = await open(proxy.port)
  t.equal(await echoed(before.socket, 'ping'), 'ping', 'forwarded')
  t.equal(proxy.connections, 1)

  const healed = proxy.cut(300)
  t.ok(proxy.cutting)
  await within(before.read, 3000, 'the open connection to drop')
  t.ok(before.socket.destroyed, 'the open connection was dropped')

  // A connection attempt during the cut is accepted by the kernel, then reset.
  const during = connect(proxy.port, '127.0.0.1')
  during.on('error', () => {})
  await next(during, 'close', 'the refused connection to close')
  t.equal(proxy.refused, 1, 'refused during the cut')

  await within(healed, 3000, 'the cut to end')
  t.notOk(proxy.cutting)
  const after = await open(proxy.port)
  t.equal(await echoed(after.socket, 'pong'), 'pong', 'forwarded again')
  after.socket.destroy()
  await proxy.close()
  await proxy.close()
  t.pass('closing twice is harmless')
})

t.test('an ioredis client through the proxy loses Redis during a cut and gets it back after', async (t) => {
  const redis = await startRedis(t)
  const proxy = await startProxy(t, redis.port)
  const client = new Redis(proxy.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => 50 })
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  await next(client, 'ready', 'ready')
  t.equal(await client.ping(), 'PONG')

  const closed = next(client, 'close', 'the client to lose its connection')
  const healed = proxy.cut(500)
  await closed
  await t.rejects(client.ping(), 'no command while cut off')
  await within(healed, 3000, 'the cut to end')
  await next(client, 'ready', 'the client to reconnect')
  t.equal(await client.ping(), 'PONG', 'commands go through again')
  t.ok(proxy.refused > 0, 'the client tried during the cut')
})
