import t from 'tap'
import { decode } from '../helpers/frames.js'
import { frameText, headerLength, writeFrame } from '../../lib/protocol/frame.js'

t.test('headerLength: 2, 4 or 10 bytes by payload length (RFC 6455 §5.2)', async (t) => {
  t.strictSame([0, 125, 126, 65535, 65536, 2 ** 32].map(headerLength), [2, 2, 4, 4, 10, 10])
})

t.test('writeFrame writes an unmasked FIN text frame at the offset and returns where it ends', async (t) => {
  for (const length of [0, 5, 125, 126, 65535, 65536, 70_000]) {
    const text = 'é'.repeat(Math.floor(length / 2)) + 'x'.repeat(length % 2)
    const bytes = Buffer.byteLength(text)
    const target = Buffer.alloc(3 + headerLength(bytes) + bytes + 2, 0xee)
    const end = writeFrame(target, 3, text, bytes)
    t.equal(end, 3 + headerLength(bytes) + bytes, `${bytes} bytes: ends after header and payload`)
    t.strictSame([...target.subarray(0, 3), ...target.subarray(end)], [0xee, 0xee, 0xee, 0xee, 0xee], 'nothing outside it is touched')
    const frame = target.subarray(3, end)
    t.equal(frame[0], 0x81, 'FIN + text opcode')
    t.equal(frame[1] & 0x80, 0, 'not masked')
    const declared = bytes < 126 ? frame[1] : bytes < 65536 ? frame.readUInt16BE(2) : Number(frame.readBigUInt64BE(2))
    t.equal(declared, bytes, 'the length is the payload\'s UTF-8 length')
    t.strictSame(await decode(frame, 1), [text], 'a client reads the text back')
  }
})

t.test('frames written one after another in one buffer are read back in order', async (t) => {
  const texts = ['one', 'ü'.repeat(100), 'three']
  const lengths = texts.map((text) => Buffer.byteLength(text))
  const frames = Buffer.alloc(lengths.reduce((sum, n) => sum + headerLength(n) + n, 0))
  let at = 0
  texts.forEach((text, i) => { at = writeFrame(frames, at, text, lengths[i]) })
  t.equal(at, frames.length)
  t.strictSame(await decode(frames, texts.length), texts)
})

t.test('frameText frames one text the same way', async (t) => {
  for (const text of ['', 'héllo', 'x'.repeat(300), 'y'.repeat(70000)]) {
    const frame = frameText(text)
    t.strictSame(await decode(frame, 1), [text])
    const bytes = Buffer.byteLength(text)
    const expected = Buffer.alloc(headerLength(bytes) + bytes)
    writeFrame(expected, 0, text, bytes)
    t.strictSame(frame, expected, `${text.length} characters: exactly one frame, no slack`)
  }
})
