import type { Test } from 'tap'
import type { ChatMessage } from '../../lib/protocol/wire.js'
import { CID_WINDOW } from '../../lib/stores/history-store.js'
import type { HistoryStore, NewMessage } from '../../lib/stores/history-store.js'
import { message, offsets, older, pageBack, range } from './history.js'

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
 * For a store that keeps its history across a restart, `reopen` returns a new
 * store on the same data as `store` (which the suite has closed).
 */
/** The read methods of a store under test, which every store of the package has. */
function reads (store: HistoryStore): Required<Pick<HistoryStore, 'markRead' | 'readPosition' | 'readPositions'>> {
  const { markRead, readPosition, readPositions } = store
  if (markRead === undefined || readPosition === undefined || readPositions === undefined) throw new Error('the store keeps no read positions')
  return { markRead: markRead.bind(store), readPosition: readPosition.bind(store), readPositions: readPositions.bind(store) }
}

export function conformance (t: Test, name: string, makeStore: () => Promise<HistoryStore>, reopen?: (store: HistoryStore) => Promise<HistoryStore>): void {
  async function opened (t: Test, store: HistoryStore): Promise<HistoryStore> {
    t.teardown(async () => await store.close?.())
    await store.init?.()
    return store
  }

  async function open (t: Test): Promise<HistoryStore> {
    return await opened(t, await makeStore())
  }

  /** Appends and returns the stored message, checking it was not taken for a duplicate. */
  async function stored (store: HistoryStore, input: NewMessage): Promise<ChatMessage> {
    const result = await store.append(input)
    if (result.duplicate) throw new Error(`${JSON.stringify(input)} was taken for a duplicate of ${JSON.stringify(result.message)}`)
    return result.message
  }

  /** Appends one message with each of `cids`, in order. */
  async function appendCids (store: HistoryStore, room: string, cids: string[]): Promise<void> {
    for (const cid of cids) await stored(store, message(room, `text of ${cid}`, cid))
  }

  const cidRange = (from: number, to: number): string[] => range(from, to).map((i) => `c${i}`)

  async function filled (t: Test, room: string, count: number): Promise<HistoryStore> {
    const store = await open(t)
    for (let i = 1; i <= count; i++) await stored(store, message(room, `m${i}`))
    return store
  }

  t.test(`${name} conforms to HistoryStore`, async (t) => {
    t.test('numbers messages from 1 per room and returns the input with its offset', async (t) => {
      const store = await open(t)
      const input = message('a', 'first')
      t.strictSame(await store.append(input), { message: { ...input, offset: 1 }, duplicate: false })
      t.notOk(Object.hasOwn(input, 'offset'), 'the input is not changed')
      t.equal((await stored(store, message('a'))).offset, 2)
      t.equal((await stored(store, message('b'))).offset, 1, 'another room starts at 1')
      t.equal((await stored(store, message('a'))).offset, 3)
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

    t.test('before is the latest messages below an offset, oldest first, bounded by limit', async (t) => {
      const store = await filled(t, 'a', WINDOW)
      const epoch = await store.epoch('a')
      const page = await older(store, 'a', WINDOW + 1, 2)
      t.strictSame({ ...page, messages: offsets(page) }, { epoch, offset: WINDOW, messages: [WINDOW - 1, WINDOW], more: true })
      t.strictSame(page.messages.map((m) => m.text), [`m${WINDOW - 1}`, `m${WINDOW}`])
      t.strictSame(offsets(await older(store, 'a', 4, 2)), [2, 3])
      t.equal((await older(store, 'a', 4, 2)).more, true, '1 is older')
      t.strictSame(await older(store, 'a', 3, 2).then((p) => [offsets(p), p.more]), [[1, 2], false], 'a page that ends at 1 has no more')
      t.strictSame(await older(store, 'a', 3, 10).then((p) => [offsets(p), p.more]), [[1, 2], false])
      t.strictSame(await older(store, 'a', 1_000_000, 3).then((p) => [offsets(p), p.more]), [range(WINDOW - 2, WINDOW), true], 'beyond the latest: the latest')
      t.strictSame(await older(store, 'a', WINDOW + 1, 0).then((p) => [p.messages, p.more]), [[], true], 'limit 0: nothing, and whether older are kept')
      t.strictSame(await older(store, 'a', Number.MAX_SAFE_INTEGER, 1).then(offsets), [WINDOW])
      for (const before of [0, 1]) {
        t.strictSame(await older(store, 'a', before, 5), { epoch, offset: WINDOW, messages: [], more: false }, `nothing before ${before}`)
      }
    })

    t.test('before in a room never written is empty at offset 0', async (t) => {
      const store = await open(t)
      t.strictSame(await older(store, 'nobody-here', 10, 5), { epoch: await store.epoch('nobody-here'), offset: 0, messages: [], more: false })
    })

    t.test('paging back with before gives every kept offset once, in order, and more is false only at the end', async (t) => {
      const last = WINDOW * 3 + 2
      const store = await filled(t, 'a', last)
      await stored(store, message('b', 'other room'))
      for (const limit of [1, 2, 3, WINDOW, 100]) {
        const pages = await pageBack(async (before) => await older(store, 'a', before, limit), last + 1)
        const seen = pages.flatMap((page) => offsets(page) as number[]).sort((x, y) => x - y)
        const oldest = seen[0] as number
        t.ok(oldest === 1 || oldest === last - WINDOW + 1, `limit ${limit}: from the first message or the latest WINDOW (${oldest})`)
        t.strictSame(pages.flatMap((page) => [...(offsets(page) as number[])].reverse()), range(oldest, last).reverse(), `limit ${limit}: each once, newest page first`)
        t.ok(pages.every((page) => page.messages.length <= limit && page.messages.every((m) => m.room === 'a')), `limit ${limit}: pages within limit, of the room`)
        t.ok(pages.slice(0, -1).every((page) => page.more && page.messages.length === limit), `limit ${limit}: every page but the last is full and has more`)
        t.strictSame(await older(store, 'a', oldest, limit).then((p) => [offsets(p), p.more]), [[], false], `limit ${limit}: nothing before the oldest kept`)
      }
    })

    t.test('epochs are stable per room, distinct per room and per fresh store', async (t) => {
      const store = await open(t)
      const other = await open(t)
      const epoch = await store.epoch('a')
      t.type(epoch, 'string')
      t.ok(epoch.length > 0)
      t.equal(await store.epoch('a'), epoch, 'reading twice gives the same epoch')
      await stored(store, message('a'))
      await stored(store, message('a'))
      t.equal(await store.epoch('a'), epoch, 'writing keeps the epoch read before')
      t.equal((await store.recent('a', 1)).epoch, epoch)
      t.equal((await store.since('a', 0))?.epoch, epoch)
      t.not(await store.epoch('b'), epoch, 'each room has its own epoch')
      t.not(await other.epoch('a'), epoch, 'a fresh store means fresh epochs')
    })

    t.test('rooms are independent', async (t) => {
      const store = await filled(t, 'a', WINDOW * 2)
      const epochA = await store.epoch('a')
      await stored(store, message('b', 'b1'))
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
      const expected = [{ ...plain, offset: 1 }, { ...withCid, offset: 2 }]
      t.strictSame([await stored(store, plain), await stored(store, withCid)], expected)
      const recent = (await store.recent('r', 10)).messages
      const since = (await store.since('r', 0))?.messages
      t.strictSame(recent, expected)
      t.strictSame(since, expected)
      t.strictSame((await older(store, 'r', 3, 10)).messages, expected)
      t.notOk(Object.hasOwn(recent[0] as object, 'cid'), 'no cid key when none was given')
      t.equal(recent[1]?.cid, 'c-1')
    })

    t.test('meta round-trips as given, through recent, since and a resent cid, and only when given', async (t) => {
      const store = await open(t)
      const meta = { replyTo: 1, mentions: ['u2', 'zoë 🚀'], nested: { deep: [1, { x: null }], flag: false, 'key "quoted"': 'v\n\\' }, empty: {} }
      const plain = message('r', 'no meta')
      const withMeta: NewMessage = { ...message('r', 'with meta', 'c-meta'), meta }
      const expected = [{ ...plain, offset: 1 }, { ...withMeta, offset: 2 }]
      t.strictSame([await stored(store, plain), await stored(store, withMeta)], expected)
      const recent = (await store.recent('r', 10)).messages
      t.strictSame(recent, expected)
      t.strictSame((await store.since('r', 1))?.messages, expected.slice(1))
      if (store.before !== undefined) t.strictSame((await store.before('r', 3, 10)).messages, expected, 'and through before')
      t.notOk(Object.hasOwn(recent[0] as object, 'meta'), 'no meta key when none was given')
      t.strictSame(await store.append({ ...withMeta, meta: { other: true } }), { message: expected[1], duplicate: true }, 'a resend gets the stored meta back')
      for (let i = 0; i < WINDOW; i++) await stored(store, message('r', `filler ${i}`))
      t.strictSame((await store.append(withMeta)).message, expected[1], 'and still once the message itself is trimmed')
    })

    t.test('edits and deletes are entries like messages, with their type and of', async (t) => {
      const store = await open(t)
      const original = await stored(store, message('r', 'helo'))
      const edit: NewMessage = { ...message('r', 'hello', 'e-1'), type: 'edit', of: original.offset }
      const del: NewMessage = { ...message('r', ''), type: 'delete', of: original.offset }
      const expected = [original, { ...edit, offset: 2 }, { ...del, offset: 3 }]
      t.strictSame([await stored(store, edit), await stored(store, del)], expected.slice(1))
      t.strictSame((await store.recent('r', 10)).messages, expected)
      t.strictSame((await store.since('r', 1))?.messages, expected.slice(1))
      t.strictSame(await store.append({ ...edit, text: 'resent' }), { message: expected[1], duplicate: true }, 'a resent edit gets the stored edit back')
    })

    t.test('entry is the one entry at an offset, or null when there is none or it is no longer kept', async (t) => {
      const store = await filled(t, 'a', WINDOW + 2)
      await stored(store, { ...message('a', 'fixed', 'c-e'), type: 'edit', of: WINDOW + 2 })
      t.strictSame(await store.entry('a', WINDOW + 2), { ...message('a', `m${WINDOW + 2}`), offset: WINDOW + 2 })
      t.strictSame(await store.entry('a', WINDOW + 3), { ...message('a', 'fixed', 'c-e'), type: 'edit', of: WINDOW + 2, offset: WINDOW + 3 })
      t.equal((await store.entry('a', 4))?.text, 'm4', 'the oldest kept')
      // A store may keep more than it replays (SQLite without retain keeps every message): then the entry is still there.
      const older = await store.entry('a', 3)
      t.ok(older === null || older.text === 'm3', 'pruned, or kept whole')
      t.equal(await store.entry('a', WINDOW + 4), null, 'beyond the latest')
      t.equal(await store.entry('a', 0), null)
      t.equal(await store.entry('b', 1), null, 'another room')
      t.equal(await store.entry('never', 1), null, 'a room never written')
    })

    t.test('concurrent appends get consecutive offsets per room, none twice', async (t) => {
      const store = await open(t)
      const rooms = ['a', 'b', 'c']
      const all = await Promise.all(Array.from({ length: 60 }, async (_, i) => await stored(store, message(rooms[i % 3] as string, `m${i}`))))
      for (const room of rooms) {
        const mine = all.filter((m) => m.room === room).map((m) => m.offset).sort((x, y) => x - y)
        t.strictSame(mine, range(1, 20), `room ${room}`)
        t.equal((await store.recent(room, 1)).offset, 20)
      }
    })

    t.test('a resend with the same cid is stored once, and the stored copy comes back', async (t) => {
      const store = await open(t)
      const first = await store.append(message('a', 'hello', 'c1'))
      t.strictSame(first, { message: { ...message('a', 'hello', 'c1'), offset: 1 }, duplicate: false })
      t.strictSame(await store.append(message('a', 'hello', 'c1')), { message: first.message, duplicate: true }, 'the same offset')
      const changed = { ...message('a', 'edited', 'c1'), ts: 1_800_000_000_000, from: { id: 'u2', name: 'bob' } }
      t.strictSame(await store.append(changed), { message: first.message, duplicate: true }, 'the stored copy, not the resent one')
      const page = await store.recent('a', 100)
      t.equal(page.offset, 1, 'a duplicate takes no offset')
      t.strictSame(page.messages, [first.message], 'stored once')
      t.equal((await stored(store, message('a', 'next'))).offset, 2)
      t.strictSame(offsets(await store.since('a', 0)), [1, 2])
    })

    t.test('distinct cids, messages without a cid and other rooms are unaffected', async (t) => {
      const store = await open(t)
      t.equal((await stored(store, message('a', 'same text'))).offset, 1)
      t.equal((await stored(store, message('a', 'same text'))).offset, 2, 'without a cid, the same text is stored again')
      t.equal((await stored(store, message('a', 'same text', 'c1'))).offset, 3)
      t.equal((await stored(store, message('a', 'same text', 'c2'))).offset, 4, 'another cid is another message')
      t.equal((await stored(store, message('b', 'same text', 'c1'))).offset, 1, 'a cid is remembered per room')
      t.equal((await store.append(message('a', 'same text', 'c2'))).message.offset, 4)
      t.equal((await store.append(message('b', 'same text', 'c1'))).message.offset, 1)
      t.equal((await store.recent('a', 100)).offset, 4)
      t.equal((await store.recent('b', 100)).offset, 1)
    })

    t.test('a cid outlives the trimming of its message', async (t) => {
      const store = await open(t)
      const first = await stored(store, message('a', 'early', 'c1'))
      for (let i = 0; i < WINDOW * 2; i++) await stored(store, message('a', `filler ${i}`))
      t.notOk((await store.recent('a', 100)).messages.some((m) => m.offset === 1), 'the message itself is no longer kept')
      t.strictSame(await store.append(message('a', 'early', 'c1')), { message: first, duplicate: true })
      t.equal((await store.recent('a', 1)).offset, WINDOW * 2 + 1)
    })

    t.test(`the latest ${CID_WINDOW} cids of a room are remembered, and no more`, async (t) => {
      const store = await open(t)
      await appendCids(store, 'a', cidRange(0, CID_WINDOW))
      t.equal((await store.append(message('a', 'again', 'c1'))).duplicate, true, `the oldest of the latest ${CID_WINDOW}`)
      t.equal((await store.append(message('a', 'again', `c${CID_WINDOW}`))).duplicate, true, 'the latest')
      const forgotten = await store.append(message('a', 'again', 'c0'))
      t.strictSame(forgotten, { message: { ...message('a', 'again', 'c0'), offset: CID_WINDOW + 2 }, duplicate: false }, 'one more back is stored anew')
      t.equal((await store.append(message('a', 'again', 'c0'))).message.offset, CID_WINDOW + 2, 'and remembered in turn')
      t.equal((await store.append(message('a', 'again', 'c1'))).message.offset, CID_WINDOW + 3, 'c1 too, which pushes c2 out')
      t.equal((await store.append(message('a', 'again', 'c3'))).duplicate, true, 'c3 is the oldest remembered')
      t.equal((await store.append(message('a', 'again', 'c2'))).message.offset, CID_WINDOW + 4)
    })

    t.test('concurrent appends with one cid store it once', async (t) => {
      const store = await open(t)
      const results = await Promise.all(Array.from({ length: 10 }, async () => await store.append(message('a', 'racing', 'c1'))))
      t.equal(results.filter((r) => !r.duplicate).length, 1, 'one was stored')
      t.ok(results.every((r) => r.message.offset === 1 && r.message.text === 'racing'), 'every caller got that message')
      t.equal((await store.recent('a', 100)).messages.length, 1)
    })

    t.test('read positions move forward only, clamped to the room\'s latest, per user and room', async (t) => {
      const store = await filled(t, 'a', 3)
      t.equal(await reads(store).readPosition('a', 'u1'), 0, 'none yet: 0')
      t.strictSame(await reads(store).readPositions('u1'), {})
      t.equal(await reads(store).markRead('a', 'u1', 2), 2, 'moved')
      t.equal(await reads(store).markRead('a', 'u1', 1), null, 'a lower offset is ignored')
      t.equal(await reads(store).markRead('a', 'u1', 2), null, 'an equal one too')
      t.equal(await reads(store).readPosition('a', 'u1'), 2)
      t.equal(await reads(store).markRead('a', 'u1', 99), 3, 'beyond the latest: clamped to it')
      t.equal(await reads(store).markRead('a', 'u1', 99), null, 'and clamped again, it does not move')
      t.equal(await reads(store).markRead('empty', 'u1', 5), null, 'a room without messages has nothing to read')
      t.equal(await reads(store).readPosition('empty', 'u1'), 0)
      t.equal(await reads(store).readPosition('a', 'u2'), 0, 'another user has their own')
      await stored(store, message('__proto__'))
      t.equal(await reads(store).markRead('__proto__', 'u1', 1), 1)
      t.equal(await reads(store).markRead('a', 'u2', 1), 1)
      const positions = await reads(store).readPositions('u1')
      t.strictSame(positions, { a: 3, ['__proto__']: 1 }, 'every room of the user, a room named __proto__ included')
      t.equal(Object.getPrototypeOf(positions), Object.prototype, 'as own properties')
      t.strictSame(await reads(store).readPositions('u2'), { a: 1 })
    })

    if (reopen !== undefined) {
      t.test('cids are remembered across a close and a reopen', async (t) => {
        const before = await open(t)
        await stored(before, message('a', 'before the restart', 'c-first'))
        await appendCids(before, 'a', cidRange(1, CID_WINDOW))
        for (let i = 0; i < WINDOW; i++) await stored(before, message('a', `filler ${i}`))
        const epoch = await before.epoch('a')
        await before.close?.()

        const after = await opened(t, await reopen(before))
        t.equal(await after.epoch('a'), epoch, 'the same history')
        const latest = CID_WINDOW + 1 + WINDOW
        t.strictSame(await older(after, 'a', latest + 1, 2).then((p) => [offsets(p), p.more]), [[latest - 1, latest], true], 'paging back reads the reopened file')
        t.strictSame(await after.append(message('a', 'resent', 'c1')), { message: { ...message('a', 'text of c1', 'c1'), offset: 2 }, duplicate: true }, 'a resend gets the stored copy')
        t.equal((await after.append(message('a', 'resent', `c${CID_WINDOW}`))).duplicate, true)
        const last = CID_WINDOW + 1 + WINDOW
        const again = message('a', 'before the restart', 'c-first')
        t.strictSame(await after.append(again), { message: { ...again, offset: last + 1 }, duplicate: false }, `the window (${CID_WINDOW}) held across the reopen`)
        t.strictSame(await after.append(again), { message: { ...again, offset: last + 1 }, duplicate: true }, 'and is remembered in turn')
        t.equal((await after.append(message('a', 'resent', 'c1'))).duplicate, false, 'c1 is pushed out by it: the window goes on sliding from where it was')
        t.equal((await after.append(message('a', 'resent', 'c3'))).duplicate, true)
        t.equal((await after.recent('a', 1)).offset, last + 2)
      })
    }

    if (reopen !== undefined) {
      t.test('meta is kept across a close and a reopen', async (t) => {
        const before = await open(t)
        const withMeta: NewMessage = { ...message('a', 'kept', 'c-kept'), meta: { replyTo: 7, mentions: ['u2'] } }
        await stored(before, message('a', 'plain'))
        await stored(before, withMeta)
        await before.close?.()
        const after = await opened(t, await reopen(before))
        const expected = [{ ...message('a', 'plain'), offset: 1 }, { ...withMeta, offset: 2 }]
        t.strictSame((await after.recent('a', 10)).messages, expected)
        t.strictSame((await after.since('a', 0))?.messages, expected)
        t.strictSame(await after.append(withMeta), { message: expected[1], duplicate: true })
      })

      t.test('read positions are kept across a close and a reopen', async (t) => {
        const before = await filled(t, 'a', 4)
        t.equal(await reads(before).markRead('a', 'u1', 3), 3)
        await before.close?.()
        const after = await opened(t, await reopen(before))
        t.equal(await reads(after).readPosition('a', 'u1'), 3)
        t.strictSame(await reads(after).readPositions('u1'), { a: 3 })
        t.equal(await reads(after).markRead('a', 'u1', 2), null, 'still only forward')
      })
    }

    t.test('close can be called twice', async (t) => {
      const store = await open(t)
      await stored(store, message('a'))
      await t.resolves(async () => await store.close?.())
      await t.resolves(async () => await store.close?.())
    })
  })
}
