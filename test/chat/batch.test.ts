import t from 'tap'
import { decode } from '../helpers/frames.js'
import { Batch } from '../../lib/chat/batch.js'
import type { ChatMessage } from '../../lib/protocol/wire.js'

function message (offset: number): ChatMessage {
  return { room: 'r', offset, ts: 0, from: { id: 'u', name: 'u' }, text: `m${offset}` }
}

t.test('frames every entry once, into one buffer, for every payload length class', async (t) => {
  const batch = new Batch()
  const texts: string[] = []
  for (const length of [0, 1, 125, 126, 65535, 65536, 70000]) {
    const text = 'é'.repeat(Math.floor(length / 2)) + 'x'.repeat(length % 2)
    texts.push(text)
    batch.add(text, null, null, null)
  }
  const frames = batch.frames
  t.equal(frames, batch.frames, 'built once and reused')
  t.equal(frames.length, batch.bytes, 'bytes counts headers and payloads')
  t.equal(frames[0], 0x81, 'FIN + text opcode')
  t.equal(frames[1] & 0x80, 0, 'server frames are not masked')
  t.same(await decode(frames, texts.length), texts, 'every payload round-trips, in order')
  batch.add('late', null, null, null)
  t.not(batch.frames, frames, 'an entry added later is framed too')
  t.same((await decode(batch.frames, texts.length + 1)).at(-1), 'late')
})

t.test('counts messages apart from presence events', async (t) => {
  const batch = new Batch()
  batch.add('{"type":"presence"}', null, null, null)
  batch.add('{"type":"message"}', message(1), null, null)
  t.equal(batch.messages, 1)
  t.equal(batch.uniform, true, 'nobody is skipped')
  t.equal(batch.skips({ key: 'a-key', id: 'a' }), false)
  t.equal(batch.messagesFor({ key: 'a-key', id: 'a' }), 1)
})

t.test('a recipient an entry skips gets the others, framed for it alone', async (t) => {
  const batch = new Batch()
  batch.add('one', message(1), 'sender-key', null)
  batch.add('two', null, null, 'alice')
  batch.add('three', message(2), null, null)
  t.equal(batch.uniform, false)

  const bystander = { key: 'bob-key', id: 'bob' }
  t.equal(batch.skips(bystander), false, 'a socket without a key is never excluded by key')
  t.same(await decode(batch.frames, 3), ['one', 'two', 'three'])
  t.equal(batch.messagesFor(bystander), 2)

  const sender = { key: 'sender-key', id: 'carol' }
  t.equal(batch.skips(sender), true)
  t.same(await decode(batch.framesFor(sender) as Buffer, 2), ['two', 'three'], 'the sender misses its own message')
  t.equal(batch.messagesFor(sender), 1)

  const alice = { key: 'alice-key', id: 'alice' }
  t.same(await decode(batch.framesFor(alice) as Buffer, 2), ['one', 'three'], 'alice misses her own presence event')
  t.same(batch.entriesFor(alice).map((e) => e.text), ['one', 'three'])

  const only = new Batch()
  only.add('one', message(1), 'sender-key', null)
  t.equal(only.framesFor(sender), null, 'nothing left for it: no write at all')
  t.equal(only.messagesFor(sender), 0)
})

t.test('a member that joined after the batch began gets only what came after', async (t) => {
  const batch = new Batch()
  const early = { key: 'early-key', id: 'early' }
  const late = { key: 'late-key', id: 'late' }
  batch.joined(early)
  t.equal(batch.skips(early), false, 'joining an empty batch misses nothing')
  t.equal(batch.uniform, true)
  batch.add('before', message(1), null, null)
  batch.joined(late)
  batch.add('after', message(2), null, null)
  t.equal(batch.uniform, false, 'a member joined midway')
  t.equal(batch.skips(late), true)
  t.same(await decode(batch.framesFor(late) as Buffer, 1), ['after'])
  t.equal(batch.messagesFor(late), 1)
  t.same(await decode(batch.frames, 2), ['before', 'after'], 'the others get everything')
  t.equal(batch.messagesFor(early), 2)
})

t.test('below: a member with a floor misses the messages up to it, and nothing else', async (t) => {
  const batch = new Batch()
  const floored = { key: 'floored-key', id: 'floored' }
  const above = { key: 'above-key', id: 'above' }
  const other = { key: 'other-key', id: 'other' }
  batch.add('m2', message(2), null, null)
  batch.add('presence', null, null, null)
  batch.add('m3', message(3), null, null)
  batch.add('m4', message(4), null, null)
  t.equal(batch.uniform, true)
  batch.below(new Map([[floored, 3], [above, 9]]))
  t.equal(batch.uniform, false, 'some member has a floor')
  t.equal(batch.skips(other), false, 'a member without one gets the shared frames')
  t.same(await decode(batch.framesFor(floored) as Buffer, 2), ['presence', 'm4'], 'presence is never below a floor')
  t.equal(batch.messagesFor(floored), 1)
  t.same(batch.entriesFor(above).map((e) => e.text), ['presence'])
  t.equal(batch.messagesFor(above), 0)

  const only = new Batch()
  only.add('m1', message(1), null, null)
  only.below(new Map([[floored, 1]]))
  t.equal(only.framesFor(floored), null, 'nothing left for it: no write at all')
})
