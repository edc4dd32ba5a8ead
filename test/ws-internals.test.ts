// Fails loudly when a ws upgrade moves the internals lib/ws-internals.ts uses.
import { once } from 'node:events'
import t from 'tap'
import type WebSocket from 'ws'
import { setMaxPayload } from '../lib/ws-internals.js'
import { wsPair } from './helpers/chat.js'

t.test('setMaxPayload reaches the receiver of a real socket', async (t) => {
  const { server, client } = await wsPair(t, { maxPayload: 1 << 20 })
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
  const { server, client } = await wsPair(t)
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
  const { server, client } = await wsPair(t, { perMessageDeflate: true }, { perMessageDeflate: true })
  t.equal(server.extensions, 'permessage-deflate')
  t.equal(rawSocketOf(server), null)
  t.equal(rawSocketOf({ extensions: '' } as WebSocket), null, 'no internals, no raw socket')
  client.close()
  await once(client, 'close')
})
