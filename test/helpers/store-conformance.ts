import type { Test } from 'tap'
import type { HistoryStore, NewMessage } from '../../lib/stores/history-store.js'
import { message, offsets, range } from './history.js'

/**
 * How many messages per room the stores under test keep and replay: build
 * them so that `recent` and `since` see exactly the latest `WINDOW` messages
 * (a memory store of that size, an SQLite store with that `historySize`, …).
 */
export const WINDOW = 5

/**
 * The behaviour every {@link HistoryStore} shares, as subtests of `t`.
 * `makeStore` returns a fresh, empty store that keeps `WINDOW` messages per
 * room; the suite calls `init()` and closes it at the end of each subtest.
 */
export function conformance (t: Test, name: string, makeStore: () => Promise<HistoryStore>): void {
  async function open (t: Test): Promise<HistoryStore> {
    const store = await makeStore()
    t.teardown(async () => await store.close?.())
    await store.init?.()
    return store
  }

  async function filled (t: Test, room: string, count: number): Promise<HistoryStore> {
    const store = await open(t)
    for (let i = 1; i <= count; i++) await store.append(message(room, `m${i}`))
    return store
  }

  t.test(`${name} conforms to HistoryStore`, async (t) => {
    t.test('numbers messages from 1 per room and returns the input with its offset', async (t) => {
      const store = await open(t)
      const input = message('a', 'first')
      t.strictSame(await store.append(input), { ...input, offset: 1 })
      t.notOk(Object.hasOwn(input, 'offset'), 'the input is not changed')
      t.equal((await store.append(message('a'))).offset, 2)
      t.equal((await store.append(message('b'))).offset, 1, 'another room starts at 1')
      t.equal((await store.append(message('a'))).offset, 3)
      t.equal((await store.recent('a', 10)).offset, 3)
      t.equal((await store.recent('b', 10)).offset, 1)
    })

    t.test('recent is the latest messages, oldest first, bounded by limit', async (t) => {
      const store = await filled(t, 'a', WINDOW - 1)
      const page = await store.recent('a', 2)
      t.equal(page.epoch, await store.epoch('a'))
      t.equal(page.offset, WINDOW - 1)
      t.strictSame(offsets(page), [WINDOW - 2, WINDOW - 1])
      t.strictSame(page.messages.map((m) => m.text), [`m${WINDOW - 2}`, `m${WINDOW - 1}`])
      t.strictSame(offsets(await store.recent('a', 100)), range(1, WINDOW - 1))
      t.strictSame(offsets(await store.recent('a', 0)), [])
    })

    t.test('recent keeps the latest WINDOW once a room has more', async (t) => {
      const store = await filled(t, 'a', WINDOW * 2 + 1)
      const page = await store.recent('a', 100)
      t.equal(page.offset, WINDOW * 2 + 1)
      t.strictSame(offsets(page), range(WINDOW + 2, WINDOW * 2 + 1))
    })

    t.test('a room never written is empty at offset 0', async (t) => {
      const store = await open(t)
      const page = await store.recent('nobody-here', 10)
      t.equal(page.offset, 0)
      t.strictSame(page.messages, [])
      t.equal(page.epoch, await store.epoch('nobody-here'))
    })

    t.test('since returns exactly the later messages', async (t) => {
      const store = await filled(t, 'a', WINDOW)
      const page = await store.since('a', 2)
      t.equal(page?.offset, WINDOW)
      t.equal(page?.epoch, await store.epoch('a'))
      t.strictSame(offsets(page), range(3, WINDOW))
      t.strictSame(offsets(await store.since('a', 0)), range(1, WINDOW))
      t.strictSame(offsets(await store.since('a', WINDOW - 1)), [WINDOW])
    })

    t.test('since is empty when the caller is up to date', async (t) => {
      const store = await filled(t, 'a', 3)
      t.strictSame(await store.since('a', 3), { epoch: await store.epoch('a'), offset: 3, messages: [] })
      t.strictSame(offsets(await store.since('fresh', 0)), [], 'a fresh room is up to date at 0')
    })

    t.test('since is null on a gap', async (t) => {
      const last = WINDOW * 2 + 1
      const store = await filled(t, 'a', last)
      t.strictSame(offsets(await store.since('a', last - WINDOW)), range(last - WINDOW + 1, last), 'the last WINDOW are still there')
      t.equal(await store.since('a', last - WINDOW - 1), null)
      t.equal(await store.since('a', 0), null)
    })

    t.test('since is null beyond the latest offset', async (t) => {
      const store = await filled(t, 'a', 3)
      t.equal(await store.since('a', 4), null)
      t.equal(await store.since('fresh', 1), null)
    })

    t.test('epochs are stable per room, distinct per room and per fresh store', async (t) => {
      const store = await open(t)
      const other = await open(t)
      const epoch = await store.epoch('a')
      t.type(epoch, 'string')
      t.ok(epoch.length > 0)
      t.equal(await store.epoch('a'), epoch, 'reading twice gives the same epoch')
      await store.append(message('a'))
      await store.append(message('a'))
      t.equal(await store.epoch('a'), epoch, 'writing keeps the epoch read before')
      t.equal((await store.recent('a', 1)).epoch, epoch)
      t.equal((await store.since('a', 0))?.epoch, epoch)
      t.not(await store.epoch('b'), epoch, 'each room has its own epoch')
      t.not(await other.epoch('a'), epoch, 'a fresh store means fresh epochs')
    })

    t.test('rooms are independent', async (t) => {
      const store = await filled(t, 'a', WINDOW * 2)
      const epochA = await store.epoch('a')
      await store.append(message('b', 'b1'))
      const a = await store.recent('a', 100)
      t.equal(a.offset, WINDOW * 2)
      t.equal(a.epoch, epochA)
      t.ok(a.messages.every((m) => m.room === 'a'))
      t.strictSame((await store.recent('b', 100)).messages.map((m) => [m.room, m.offset, m.text]), [['b', 1, 'b1']])
      t.strictSame(offsets(await store.since('b', 0)), [1], "a's trimming does not reach b")
    })

    t.test('messages round-trip every field, and cid only when given', async (t) => {
      const store = await open(t)
      const plain: NewMessage = { room: 'r', ts: 1_764_230_400_123, from: { id: 'id-Ω', name: 'zoë 🚀' }, text: 'héllo\n"quoted" \\ 🎉 <b>' }
      const withCid: NewMessage = { ...plain, text: 'second', cid: 'c-1' }
      const stored = [await store.append(plain), await store.append(withCid)]
      const expected = [{ ...plain, offset: 1 }, { ...withCid, offset: 2 }]
      t.strictSame(stored, expected)
      const recent = (await store.recent('r', 10)).messages
      const since = (await store.since('r', 0))?.messages
      t.strictSame(recent, expected)
      t.strictSame(since, expected)
      t.notOk(Object.hasOwn(recent[0] as object, 'cid'), 'no cid key when none was given')
      t.equal(recent[1]?.cid, 'c-1')
    })

    t.test('concurrent appends get consecutive offsets per room, none twice', async (t) => {
      const store = await open(t)
      const rooms = ['a', 'b', 'c']
      const stored = await Promise.all(Array.from({ length: 60 }, (_, i) => store.append(message(rooms[i % 3] as string, `m${i}`))))
      for (const room of rooms) {
        const mine = stored.filter((m) => m.room === room).map((m) => m.offset).sort((x, y) => x - y)
        t.strictSame(mine, range(1, 20), `room ${room}`)
        t.equal((await store.recent(room, 1)).offset, 20)
      }
    })

    t.test('close can be called twice', async (t) => {
      const store = await open(t)
      await store.append(message('a'))
      await t.resolves(async () => await store.close?.())
      await t.resolves(async () => await store.close?.())
    })
  })
}
