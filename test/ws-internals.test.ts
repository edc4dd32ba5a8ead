// Fails loudly when a ws upgrade moves the internals lib/ws-internals.ts uses.
import { once } from 'node:events'
import t from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { setMaxPayload } from '../lib/ws-internals.js'

t.test('setMaxPayload reaches the receiver of a real socket', async (t) => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 1 << 20 })
  t.teardown(() => new Promise((resolve) => wss.close(resolve)))
  await once(wss, 'listening')
  const { port } = wss.address() as { port: number }
  const accepted = once(wss, 'connection')
  const client = new WebSocket(`ws://127.0.0.1:${port}`)
  client.on('error', () => {})
  const [server] = await accepted as [WebSocket]
  server.on('error', () => {})
  await once(client, 'open')
  t.equal(setMaxPayload(server, 8), true, 'ws still has _receiver._maxPayload: if this fails, update lib/ws-internals.ts')
  const closed = once(client, 'close')
  client.send('more than eight bytes')
  t.equal((await closed)[0], 1009, 'and the receiver enforces it')
})

t.test('without the internals it says so instead of throwing', async (t) => {
  t.equal(setMaxPayload({} as WebSocket, 8), false)
  t.equal(setMaxPayload({ _receiver: { _maxPayload: 'x' } } as unknown as WebSocket, 8), false)
})

t.test('rawSocketOf finds the stream under a socket, and frames written to it arrive in order', async (t) => {
  const { Batch } = await import('../lib/fanout.js')
  const { rawSocketOf } = await import('../lib/ws-internals.js')
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  t.teardown(() => new Promise((resolve) => wss.close(resolve)))
  await once(wss, 'listening')
  const { port } = wss.address() as { port: number }
  const accepted = once(wss, 'connection')
  const client = new WebSocket(`ws://127.0.0.1:${port}`)
  const [server] = await accepted as [WebSocket]
  await once(client, 'open')
  const raw = rawSocketOf(server)
  t.ok(raw, 'ws still has _socket and _sender: if this fails, update lib/ws-internals.ts')
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
  const { rawSocketOf } = await import('../lib/ws-internals.js')
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: true })
  t.teardown(() => new Promise((resolve) => wss.close(resolve)))
  await once(wss, 'listening')
  const { port } = wss.address() as { port: number }
  const accepted = once(wss, 'connection')
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: true })
  const [server] = await accepted as [WebSocket]
  await once(client, 'open')
  t.equal(server.extensions, 'permessage-deflate')
  t.equal(rawSocketOf(server), null)
  t.equal(rawSocketOf({ extensions: '' } as WebSocket), null, 'no internals, no raw socket')
  client.close()
  await once(client, 'close')
})
