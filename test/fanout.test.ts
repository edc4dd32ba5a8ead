import t from 'tap'
import * as ws from 'ws'
import { Prepared, writeCoalesced } from '../lib/fanout.js'
import type { RawSocket } from '../lib/ws-internals.js'

// ws exports its frame parser, but @types/ws does not declare it.
interface ReceiverLike {
  on (event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void
  on (event: 'error', listener: (err: Error) => void): void
  write (chunk: Buffer): void
}
const { Receiver } = ws as unknown as { Receiver: new (opts: { isServer: boolean }) => ReceiverLike }

/** Decodes frames with ws's own Receiver, the same parser a client uses. */
async function decode (frame: Buffer): Promise<string> {
  const receiver = new Receiver({ isServer: false })
  const message = new Promise<string>((resolve, reject) => {
    receiver.on('message', (data: Buffer, isBinary: boolean) => resolve(isBinary ? 'binary!' : data.toString()))
    receiver.on('error', reject)
  })
  receiver.write(frame)
  return await message
}

t.test('frames once, for every payload length class', async (t) => {
  for (const length of [0, 1, 125, 126, 65535, 65536, 70000]) {
    const text = 'é'.repeat(Math.floor(length / 2)) + 'x'.repeat(length % 2)
    const prepared = new Prepared(text)
    const frame = prepared.frame
    t.equal(frame, prepared.frame, 'built once and reused')
    t.equal(frame[0], 0x81, 'FIN + text opcode')
    t.equal(frame[1] & 0x80, 0, 'server frames are not masked')
    t.equal(await decode(frame), text, `${Buffer.byteLength(text)} bytes round-trip`)
  }
})

class FakeSocket implements RawSocket {
  writes: Buffer[] = []
  corks = 0
  uncorks = 0
  get writableLength (): number { return 0 }
  write (chunk: Buffer): boolean { this.writes.push(chunk); return true }
  cork (): void { this.corks++ }
  uncork (): void { this.uncorks++ }
}

t.test('corks each socket once per iteration and uncorks after it', async (t) => {
  const a = new FakeSocket()
  const b = new FakeSocket()
  const frame = new Prepared('hi').frame
  for (let i = 0; i < 3; i++) {
    writeCoalesced(a, frame)
    writeCoalesced(b, frame)
  }
  t.same([a.corks, a.uncorks, a.writes.length], [1, 0, 3], 'corked once, still corked this iteration')
  await new Promise((resolve) => setImmediate(resolve))
  t.same([a.corks, a.uncorks, b.corks, b.uncorks], [1, 1, 1, 1], 'uncorked once at the end of the iteration')
  writeCoalesced(a, frame)
  t.equal(a.corks, 2, 'a new iteration corks again')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(a.uncorks, 2)
})
