import t from 'tap'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { MemoryStoreOptions } from '../../lib/stores/memory-store.js'
import type { HistoryPage, NewMessage } from '../../lib/stores/history-store.js'

/** The subset of tap's `t` the helper needs. */
interface Teardown { teardown (fn: () => unknown): void }

function message (room: string, text = 'hi', cid?: string): NewMessage {
  const m: NewMessage = { room, ts: 1700000000000, from: { id: 'u1', name: 'alice' }, text }
  if (cid !== undefined) m.cid = cid
  return m
}

function offsets (page: HistoryPage | null): number[] | null {
  return page === null ? null : page.messages.map((m) => m.offset)
}

/** A store closed when the test ends, with `count` messages already in `room`. */
async function filled (t: Teardown, opts: MemoryStoreOptions, room: string, count: number): Promise<MemoryStore> {
  const store = new MemoryStore(opts)
  t.teardown(() => store.close())
  for (let i = 1; i <= count; i++) await store.append(message(room, `m${i}`))
  return store
}

t.test('append numbers messages 1, 2, 3 per room, independently', async (t) => {
  const store = await filled(t, {}, 'a', 0)
  const input = message('a', 'first')
  const first = await store.append(input)
  t.strictSame(first, { message: { ...input, offset: 1 }, duplicate: false })
  t.notOk(Object.hasOwn(input, 'offset'), 'the input is not changed')

  t.equal((await store.append(message('a'))).message.offset, 2)
  t.equal((await store.append(message('b'))).message.offset, 1)
  t.equal((await store.append(message('a'))).message.offset, 3)
  t.equal((await store.append(message('b'))).message.offset, 2)

  t.equal((await store.recent('a', 10)).offset, 3)
  t.equal((await store.recent('b', 10)).offset, 2)
})

t.test('recent returns the latest messages, oldest first, bounded by limit', async (t) => {
  const store = await filled(t, { size: 10 }, 'a', 5)
  const epoch = await store.epoch('a')

  const page = await store.recent('a', 3)
  t.equal(page.epoch, epoch)
  t.equal(page.offset, 5)
  t.strictSame(page.messages.map((m) => m.text), ['m3', 'm4', 'm5'])
  t.strictSame(offsets(await store.recent('a', 100)), [1, 2, 3, 4, 5])
  t.strictSame(offsets(await store.recent('a', 0)), [])
})

t.test('recent of an unknown room is empty at offset 0', async (t) => {
  const store = await filled(t, {}, 'a', 0)
  const page = await store.recent('nobody-here', 10)
  t.equal(page.offset, 0)
  t.strictSame(page.messages, [])
  t.equal(page.epoch, await store.epoch('nobody-here'))
})

t.test('the ring buffer keeps the last size messages', async (t) => {
  const store = await filled(t, { size: 3 }, 'a', 7)
  const page = await store.recent('a', 10)
  t.equal(page.offset, 7)
  t.strictSame(offsets(page), [5, 6, 7])
  t.strictSame(page.messages.map((m) => m.text), ['m5', 'm6', 'm7'])
  t.strictSame(offsets(await store.recent('a', 2)), [6, 7])

  await store.append(message('a', 'm8'))
  t.strictSame(offsets(await store.recent('a', 10)), [6, 7, 8], 'it keeps wrapping')
})

t.test('since', async (t) => {
  t.test('returns exactly the later messages', async (t) => {
    const store = await filled(t, { size: 10 }, 'a', 5)
    const page = await store.since('a', 2)
    t.equal(page?.offset, 5)
    t.equal(page?.epoch, await store.epoch('a'))
    t.strictSame(offsets(page), [3, 4, 5])
    t.strictSame(offsets(await store.since('a', 0)), [1, 2, 3, 4, 5])
    t.strictSame(offsets(await store.since('a', 4)), [5])
  })

  t.test('is an empty list when the caller is up to date', async (t) => {
    const store = await filled(t, { size: 10 }, 'a', 5)
    t.strictSame(offsets(await store.since('a', 5)), [])
    t.strictSame(offsets(await store.since('fresh', 0)), [], 'a fresh room is up to date at 0')
  })

  t.test('is null once messages after offset were trimmed', async (t) => {
    const store = await filled(t, { size: 3 }, 'a', 7)
    t.strictSame(offsets(await store.since('a', 4)), [5, 6, 7], 'everything after 4 is still kept')
    t.equal(await store.since('a', 3), null)
    t.equal(await store.since('a', 0), null)
  })

  t.test('is null when offset is beyond the latest', async (t) => {
    const store = await filled(t, { size: 10 }, 'a', 5)
    t.equal(await store.since('a', 6), null)
    t.equal(await store.since('fresh', 1), null)
  })
})

t.test('epochs are stable per room and differ per store', async (t) => {
  const one = await filled(t, {}, 'a', 0)
  const two = await filled(t, {}, 'a', 0)
  const epoch = await one.epoch('a')
  t.type(epoch, 'string')
  t.ok(epoch.length > 0)

  await one.append(message('a'))
  t.equal(await one.epoch('a'), epoch, 'appending keeps the epoch')
  t.equal((await one.recent('a', 1)).epoch, epoch)
  t.equal((await one.since('a', 0))?.epoch, epoch)
  t.not(await one.epoch('b'), epoch, 'each room has its own epoch')
  t.not(await two.epoch('a'), epoch, 'a new store means new epochs')
})

t.test('size 0 keeps nothing but still numbers messages', async (t) => {
  const store = await filled(t, { size: 0 }, 'a', 0)
  t.strictSame(await store.append(message('a', 'one')), { message: { ...message('a', 'one'), offset: 1 }, duplicate: false })
  t.equal((await store.append(message('a'))).message.offset, 2)

  const page = await store.recent('a', 10)
  t.equal(page.offset, 2)
  t.strictSame(page.messages, [])
  t.strictSame(offsets(await store.since('a', 2)), [], 'an up-to-date caller still recovers')
  t.equal(await store.since('a', 1), null, 'a caller behind cannot recover')
})

t.test('past maxRooms the least recently written room is forgotten', async (t) => {
  const store = await filled(t, { maxRooms: 2 }, 'a', 2)
  const epochA = await store.epoch('a')
  await store.append(message('b'))
  const epochB = await store.epoch('b')

  await store.append(message('a'))
  await store.append(message('c'))

  t.equal(await store.epoch('a'), epochA, 'a was written last but one, so it stays')
  t.strictSame(offsets(await store.recent('a', 10)), [1, 2, 3])

  const forgotten = await store.recent('b', 10)
  t.not(forgotten.epoch, epochB, 'b comes back with a new epoch')
  t.equal(forgotten.offset, 0)
  t.strictSame(forgotten.messages, [])
  t.equal((await store.append(message('b'))).message.offset, 1, 'offsets restart')
})

t.test('size 0 keeps no message, but still recognizes a resend', async (t) => {
  const store = await filled(t, { size: 0 }, 'a', 0)
  const first = await store.append(message('a', 'one', 'c1'))
  t.strictSame(await store.append(message('a', 'one', 'c1')), { message: first.message, duplicate: true })
  t.equal((await store.recent('a', 10)).offset, 1)
})

t.test('a forgotten room forgets its cids with its epoch', async (t) => {
  const store = await filled(t, { maxRooms: 1 }, 'a', 0)
  await store.append(message('a', 'one', 'c1'))
  t.equal((await store.append(message('a', 'one', 'c1'))).duplicate, true)
  await store.append(message('b'))
  t.strictSame(await store.append(message('a', 'one', 'c1')), { message: { ...message('a', 'one', 'c1'), offset: 1 }, duplicate: false }, 'under a new epoch, stored anew')
})

t.test('close forgets every room and can be called twice', async (t) => {
  const store = await filled(t, {}, 'a', 3)
  const epoch = await store.epoch('a')
  t.equal(await store.close(), undefined)
  await t.resolves(store.close())

  const page = await store.recent('a', 10)
  t.equal(page.offset, 0)
  t.not(page.epoch, epoch)
})

t.test('options are checked when the store is made', async (t) => {
  const bad: Array<[unknown, string]> = [
    [null, 'MemoryStore'],
    [{ size: -1 }, 'MemoryStore.size'],
    [{ size: '10' }, 'MemoryStore.size'],
    [{ maxRooms: 0 }, 'MemoryStore.maxRooms'],
    [{ sise: 10 }, 'MemoryStore.sise']
  ]
  for (const [opts, name] of bad) {
    t.throws(() => new MemoryStore(opts as MemoryStoreOptions), { code: 'FST_CHAT_INVALID_OPTION', message: `"${name}"` }, JSON.stringify(opts))
  }
  t.throws(() => new MemoryStore({ sise: 10 } as unknown as MemoryStoreOptions), { message: /did you mean "MemoryStore.size"/ })
  t.type(new MemoryStore({ size: 0, maxRooms: 1 }), MemoryStore)
})
