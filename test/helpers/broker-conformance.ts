import Fastify from 'fastify'
import type { Test } from 'tap'
import type { ControlCommand } from '../../lib/broker/control.js'
import type { Adapter, AdapterContext, AdapterNode } from '../../lib/broker/adapter.js'
import type { PresenceEvent } from '../../lib/broker/presence.js'
import type { ChatMessage, SignalFrame } from '../../lib/protocol/wire.js'
import type { NewMessage } from '../../lib/stores/history-store.js'
import { within } from './chat.js'
import { message, offsets, older, pageBack, range } from './history.js'

export { message } from './history.js'

/** Messages per room the adapters under test keep and replay: the `historySize` they are started with. */
export const WINDOW = 5

/** A delivery as the node saw it. */
export interface Delivery {
  message: ChatMessage
  exclude: string | null
  /** How many resets the node had been handed before this delivery. */
  afterResets: number
}

/** A node that queues what it is handed, so tests can await deliveries in order. */
export class RecordingNode implements AdapterNode {
  readonly #deliveries: Delivery[] = []
  readonly #events: PresenceEvent[] = []
  readonly #signals: Array<{ frame: SignalFrame, exclude: string | null }> = []
  #waiting: Array<() => void> = []

  deliver (message: ChatMessage, exclude: string | null): void {
    this.#deliveries.push({ message, exclude, afterResets: this.resets.length })
    this.#wake()
  }

  signal (frame: SignalFrame, exclude: string | null): void {
    this.#signals.push({ frame, exclude })
    this.#wake()
  }

  /** The next signal the broker handed over. */
  async nextSignal (): Promise<{ frame: SignalFrame, exclude: string | null }> {
    return await this.#next(this.#signals, 'a signal')
  }

  /** Signals handed over and not yet taken with nextSignal(). */
  get signalsWaiting (): number {
    return this.#signals.length
  }

  presence (event: PresenceEvent): void {
    this.#events.push(event)
    this.#wake()
  }

  /** Read positions the broker said moved, in order. */
  readonly reads: Array<{ room: string, userId: string, offset: number, exclude: string | null }> = []

  read (room: string, userId: string, offset: number, exclude: string | null): void {
    this.reads.push({ room, userId, offset, exclude })
    this.#wake()
  }

  /** The next read position that moved. */
  async readMoved (): Promise<{ room: string, userId: string, offset: number, exclude: string | null }> {
    return await this.#next(this.reads, 'a read position')
  }

  /** Rooms the broker reset, in order. */
  readonly resets: string[] = []

  /** Control commands other servers sent, in order. */
  readonly commands: ControlCommand[] = []

  command (command: ControlCommand): void {
    this.commands.push(command)
    this.#wake()
  }

  reset (room: string): void {
    this.resets.push(room)
    this.#wake()
  }

  #wake (): void {
    const waiting = this.#waiting
    this.#waiting = []
    for (const resolve of waiting) resolve()
  }

  async #next<T> (queue: T[], what: string): Promise<T> {
    while (queue.length === 0) {
      await within(new Promise<void>((resolve) => { this.#waiting.push(resolve) }), 3000, what)
    }
    return queue.shift() as T
  }

  /** The next delivery. */
  async delivery (): Promise<Delivery> {
    return await this.#next(this.#deliveries, 'a delivery')
  }

  /** The rooms reset so far, once there are at least `count`; resets follow reconnects, hence the longer wait. */
  async resetsUntil (count: number, ms = 10_000): Promise<string[]> {
    const deadline = performance.now() + ms
    while (this.resets.length < count) {
      await within(new Promise<void>((resolve) => { this.#waiting.push(resolve) }), Math.max(0, deadline - performance.now()), `${count} resets`)
    }
    return [...this.resets]
  }

  /** The next presence event. */
  async event (): Promise<PresenceEvent> {
    return await this.#next(this.#events, 'a presence event')
  }
}

/** What a started adapter comes with: the way to stop it. */
export interface Started {
  adapter: Adapter
  teardown: () => Promise<void>
}

/** Starts a fresh adapter (its own empty history) with `context`. */
export type AdapterFactory = (context: AdapterContext) => Promise<Started>

/** Where brokers legitimately differ; a test that needs a capability is skipped, with the reason, when it is off. */
export interface Capabilities {
  /** `publish` refuses a cid stored before (`duplicate: true`); otherwise that check lives in the chat session. */
  dedupesCids: boolean
  /** Messages of a room reach the node only while it is subscribed; otherwise the node filters. */
  deliversSubscribedOnly: boolean
}

const log = Fastify().log

/**
 * The behaviour every adapter's {@link Broker} shares, as subtests of `t`.
 * `start` returns a fresh adapter started with the context it is given
 * (`historySize` is {@link WINDOW}); the suite stops it at the end of each subtest.
 */
export function brokerConformance (t: Test, name: string, start: AdapterFactory, can: Capabilities): void {
  async function open (t: Test): Promise<{ adapter: Adapter, node: RecordingNode }> {
    const node = new RecordingNode()
    const { adapter, teardown } = await start({ node, historySize: WINDOW, log })
    t.teardown(teardown)
    return { adapter, node }
  }

  async function filled (t: Test, room: string, count: number): Promise<Adapter> {
    const { adapter } = await open(t)
    for (let i = 1; i <= count; i++) await adapter.broker.publish(message(room, `m${i}`), null)
    return adapter
  }

  t.test(`${name} conforms to Broker`, async (t) => {
    t.test('publish numbers from 1 per room and delivers each once, in order', async (t) => {
      const { adapter: { broker }, node } = await open(t)
      await broker.subscribe('a')
      await broker.subscribe('b')
      const input = message('a', 'first')
      t.strictSame(await broker.publish(input, null), { message: { ...input, offset: 1 }, duplicate: false })
      t.notOk(Object.hasOwn(input, 'offset'), 'the input is not changed')
      t.equal((await broker.publish(message('a', 'second'), null)).message.offset, 2)
      t.equal((await broker.publish(message('b', 'other'), null)).message.offset, 1, 'another room starts at 1')
      t.equal((await broker.publish(message('a', 'third'), null)).message.offset, 3)
      const seen = []
      for (let i = 0; i < 4; i++) seen.push((await node.delivery()).message)
      t.strictSame(seen.map((m) => [m.room, m.offset, m.text]), [['a', 1, 'first'], ['a', 2, 'second'], ['b', 1, 'other'], ['a', 3, 'third']])
      t.strictSame(seen[0], { ...input, offset: 1 }, 'delivered as stored')
      await broker.publish(message('a', 'marker'), null)
      t.equal((await node.delivery()).message.text, 'marker', 'nothing was delivered twice')
    })

    t.test('exclude is passed through to the node', async (t) => {
      const { adapter: { broker }, node } = await open(t)
      await broker.subscribe('a')
      await broker.publish(message('a', 'skip one'), 'conn-7')
      await broker.publish(message('a', 'skip none'), null)
      t.strictSame(await node.delivery().then((d) => [d.message.text, d.exclude]), ['skip one', 'conn-7'])
      t.strictSame(await node.delivery().then((d) => [d.message.text, d.exclude]), ['skip none', null])
    })

    t.test('concurrent publishes get consecutive offsets, delivered in offset order', async (t) => {
      const { adapter: { broker }, node } = await open(t)
      await broker.subscribe('a')
      const stored = await Promise.all(Array.from({ length: 30 }, (_, i) => broker.publish(message('a', `m${i}`), null)))
      t.strictSame(stored.map((r) => r.message.offset).sort((x, y) => x - y), range(1, 30))
      const delivered = []
      for (let i = 0; i < 30; i++) delivered.push((await node.delivery()).message.offset)
      t.strictSame(delivered, range(1, 30))
    })

    t.test('unsubscribe stops delivery', { skip: can.deliversSubscribedOnly ? false : 'this broker delivers every room; its node filters' }, async (t) => {
      const { adapter: { broker }, node } = await open(t)
      await broker.subscribe('a')
      await broker.subscribe('b')
      await broker.publish(message('b', 'while subscribed'), null)
      t.equal((await node.delivery()).message.text, 'while subscribed')
      await broker.unsubscribe('b')
      await broker.publish(message('b', 'after unsubscribe'), null)
      await broker.publish(message('never', 'never subscribed'), null)
      await broker.publish(message('a', 'marker'), null)
      t.equal((await node.delivery()).message.text, 'marker', 'neither reached the node')
      t.equal((await broker.recent('b', 10)).offset, 2, 'the message was still stored')
    })

    t.test('a cid published twice is stored and delivered once', { skip: can.dedupesCids ? false : 'the chat session checks cids for this broker' }, async (t) => {
      const { adapter: { broker }, node } = await open(t)
      await broker.subscribe('a')
      const first = await broker.publish(message('a', 'once', 'cid-1'), null)
      t.equal(first.duplicate, false)
      const again = await broker.publish(message('a', 'once', 'cid-1'), null)
      t.strictSame(again, { message: first.message, duplicate: true }, 'answered with the stored copy')
      t.equal((await broker.publish(message('a', 'other', 'cid-2'), null)).message.offset, 2, 'another cid is stored')
      t.equal((await broker.publish(message('b', 'once', 'cid-1'), null)).duplicate, false, 'cids are per room')
      t.equal((await node.delivery()).message.offset, 1)
      t.equal((await node.delivery()).message.text, 'other', 'the duplicate was not delivered')
      t.strictSame(offsets(await broker.recent('a', 10)), [1, 2])
    })

    t.test('recent is the latest messages, oldest first, bounded by limit and the window', async (t) => {
      const { broker } = await filled(t, 'a', WINDOW - 1)
      const page = await broker.recent('a', 2)
      t.equal(page.offset, WINDOW - 1)
      t.strictSame(offsets(page), [WINDOW - 2, WINDOW - 1])
      t.strictSame(page.messages.map((m) => m.text), [`m${WINDOW - 2}`, `m${WINDOW - 1}`])
      t.strictSame(offsets(await broker.recent('a', 100)), range(1, WINDOW - 1))
      t.strictSame(offsets(await broker.recent('a', 0)), [])
      for (let i = WINDOW; i <= WINDOW * 2 + 1; i++) await broker.publish(message('a', `m${i}`), null)
      t.strictSame(offsets(await broker.recent('a', 100)), range(WINDOW + 2, WINDOW * 2 + 1), 'the latest WINDOW are kept')
    })

    t.test('a room never written is empty at offset 0, with a stable epoch of its own', async (t) => {
      const { adapter: { broker } } = await open(t)
      const page = await broker.recent('nobody-here', 10)
      t.strictSame(page.messages, [])
      t.equal(page.offset, 0)
      t.type(page.epoch, 'string')
      t.ok(page.epoch.length > 0)
      t.equal((await broker.recent('nobody-here', 1)).epoch, page.epoch, 'reading twice gives the same epoch')
      t.not((await broker.recent('someone-else', 1)).epoch, page.epoch, 'each room has its own epoch')
      const stored = await broker.publish(message('nobody-here'), null)
      t.equal(stored.message.offset, 1)
      t.equal((await broker.recent('nobody-here', 1)).epoch, page.epoch, 'writing keeps the epoch read before')
      t.equal((await broker.since('nobody-here', 0))?.epoch, page.epoch)
    })

    t.test('since returns exactly the later messages, and is empty when up to date', async (t) => {
      const { broker } = await filled(t, 'a', WINDOW)
      const { epoch } = await broker.recent('a', 0)
      t.strictSame(await broker.since('a', 2).then(offsets), range(3, WINDOW))
      t.strictSame(await broker.since('a', 0).then(offsets), range(1, WINDOW))
      t.strictSame(await broker.since('a', WINDOW), { epoch, offset: WINDOW, messages: [] })
      t.strictSame(await broker.since('fresh', 0).then(offsets), [], 'a fresh room is up to date at 0')
    })

    t.test('since is null on a gap and beyond the latest offset', async (t) => {
      const last = WINDOW * 2 + 1
      const { broker } = await filled(t, 'a', last)
      t.strictSame(await broker.since('a', last - WINDOW).then(offsets), range(last - WINDOW + 1, last), 'the last WINDOW are still there')
      t.equal(await broker.since('a', last - WINDOW - 1), null, 'one more is a gap')
      t.equal(await broker.since('a', 0), null)
      t.equal(await broker.since('a', last + 1), null, 'beyond the latest')
      t.equal(await broker.since('fresh', 1), null, 'beyond the latest of a fresh room')
    })

    t.test('before is the latest kept messages below an offset, oldest first, bounded by limit', async (t) => {
      const { broker } = await filled(t, 'a', WINDOW)
      const { epoch } = await broker.recent('a', 0)
      t.strictSame(await older(broker, 'a', WINDOW + 1, 2).then((p) => ({ ...p, messages: offsets(p) })), { epoch, offset: WINDOW, messages: [WINDOW - 1, WINDOW], more: true })
      t.strictSame(await older(broker, 'a', 3, 2).then((p) => [offsets(p), p.more]), [[1, 2], false], 'a page that ends at 1 has no more')
      t.strictSame(await older(broker, 'a', 4, 2).then((p) => [offsets(p), p.more]), [[2, 3], true])
      t.strictSame(await older(broker, 'a', WINDOW + 1, 0).then((p) => [p.messages, p.more]), [[], true], 'limit 0: nothing, and whether older are kept')
      t.strictSame(await older(broker, 'a', Number.MAX_SAFE_INTEGER, 1).then(offsets), [WINDOW], 'beyond the latest: the latest')
      for (const before of [0, 1]) t.strictSame(await older(broker, 'a', before, 5), { epoch, offset: WINDOW, messages: [], more: false }, `nothing before ${before}`)
      const fresh = await older(broker, 'fresh', 10, 5)
      t.strictSame(fresh, { epoch: (await broker.recent('fresh', 0)).epoch, offset: 0, messages: [], more: false }, 'a room never written')
    })

    t.test('paging back with before gives the kept window once, in order, and more is false only at the end', async (t) => {
      const last = WINDOW * 3 + 2
      const { broker } = await filled(t, 'a', last)
      await broker.publish(message('b', 'other room'), null)
      for (const limit of [1, 2, WINDOW, 100]) {
        const pages = await pageBack(async (before) => await older(broker, 'a', before, limit), last + 1)
        t.strictSame(pages.flatMap((page) => [...(offsets(page) as number[])].reverse()), range(last - WINDOW + 1, last).reverse(), `limit ${limit}: the latest WINDOW, each once`)
        t.ok(pages.slice(0, -1).every((page) => page.more && page.messages.length === limit), `limit ${limit}: every page but the last is full and has more`)
        t.ok(pages.every((page) => page.messages.every((m) => m.room === 'a' && m.text === `m${m.offset}`)), `limit ${limit}: the room's own messages`)
      }
      t.strictSame(await older(broker, 'a', last - WINDOW + 1, 5).then((p) => [offsets(p), p.more]), [[], false], 'nothing before the oldest kept')
    })

    t.test('messages round-trip every field, and cid only when given', async (t) => {
      const { adapter: { broker } } = await open(t)
      const plain: NewMessage = { room: 'r', ts: 1_764_230_400_123, from: { id: 'id-Ω', name: 'zoë 🚀' }, text: 'héllo\n"quoted" \\ 🎉 <b>' }
      const withCid: NewMessage = { ...plain, text: 'second', cid: 'c-1' }
      const expected = [{ ...plain, offset: 1 }, { ...withCid, offset: 2 }]
      t.strictSame([(await broker.publish(plain, null)).message, (await broker.publish(withCid, null)).message], expected)
      const recent = (await broker.recent('r', 10)).messages
      t.strictSame(recent, expected)
      t.strictSame((await broker.since('r', 0))?.messages, expected)
      t.strictSame((await older(broker, 'r', 3, 10)).messages, expected)
      t.notOk(Object.hasOwn(recent[0] as object, 'cid'), 'no cid key when none was given')
    })

    t.test('meta round-trips through publish, delivery, recent and since, and only when given', async (t) => {
      const { adapter: { broker }, node } = await open(t)
      await broker.subscribe('r')
      const meta = { replyTo: 1, mentions: ['u2', 'zoë 🚀'], nested: { deep: [1, { x: null }], flag: false }, empty: {} }
      const plain = message('r', 'no meta')
      const withMeta: NewMessage = { ...message('r', 'with meta', 'c-meta'), meta }
      const expected = [{ ...plain, offset: 1 }, { ...withMeta, offset: 2 }]
      t.strictSame([(await broker.publish(plain, null)).message, (await broker.publish(withMeta, null)).message], expected)
      t.strictSame([(await node.delivery()).message, (await node.delivery()).message], expected, 'delivered with its meta')
      const recent = (await broker.recent('r', 10)).messages
      t.strictSame(recent, expected)
      t.strictSame((await broker.since('r', 1))?.messages, expected.slice(1))
      t.notOk(Object.hasOwn(recent[0] as object, 'meta'), 'no meta key when none was given')
      if (can.dedupesCids) {
        t.strictSame(await broker.publish({ ...withMeta, meta: { other: true } }, null), { message: expected[1], duplicate: true }, 'a resent cid gets the stored meta back')
      }
    })

    t.test('edits and deletes round-trip as entries, and entry reads one by offset', async (t) => {
      const { adapter: { broker }, node } = await open(t)
      await broker.subscribe('r')
      const original = (await broker.publish(message('r', 'helo'), null)).message
      const edit: NewMessage = { ...message('r', 'hello', 'e-1'), type: 'edit', of: original.offset }
      const del: NewMessage = { ...message('r', ''), type: 'delete', of: original.offset }
      const expected = [original, { ...edit, offset: 2 }, { ...del, offset: 3 }]
      t.strictSame([(await broker.publish(edit, null)).message, (await broker.publish(del, 'k'))?.message], expected.slice(1))
      t.strictSame((await node.delivery()).message, original)
      t.strictSame(await node.delivery(), { message: expected[1], exclude: null, afterResets: 0 })
      t.strictSame((await node.delivery()).message, expected[2])
      t.strictSame((await broker.recent('r', 10)).messages, expected)
      t.strictSame((await broker.since('r', 1))?.messages, expected.slice(1))
      t.strictSame(await broker.entry('r', 1), original)
      t.strictSame(await broker.entry('r', 2), expected[1])
      t.equal(await broker.entry('r', 4), null, 'beyond the latest')
      t.equal(await broker.entry('other', 1), null, 'a room never written')
      for (let i = 0; i < WINDOW; i++) await broker.publish(message('r'), null)
      t.equal(await broker.entry('r', 1), null, 'no longer kept')
      t.equal((await broker.entry('r', 3 + WINDOW))?.offset, 3 + WINDOW, 'the latest')
    })

    t.test('read positions move forward only, clamped to the latest, and the node hears each move', async (t) => {
      const { adapter: { broker }, node } = await open(t)
      const { markRead, readPosition, readPositions } = broker
      if (markRead === undefined || readPosition === undefined || readPositions === undefined) throw new Error('the broker keeps no read positions')
      await broker.subscribe('a')
      for (let i = 1; i <= 4; i++) await broker.publish(message('a', `m${i}`), null)
      for (let i = 1; i <= 4; i++) await node.delivery()
      t.equal(await readPosition.call(broker, 'a', 'u1'), 0, 'none yet: 0')
      t.equal(await markRead.call(broker, 'a', 'u1', 2, 'conn-1'), 2)
      t.strictSame(await node.readMoved(), { room: 'a', userId: 'u1', offset: 2, exclude: 'conn-1' }, 'the node hears it, with the socket to skip')
      t.equal(await markRead.call(broker, 'a', 'u1', 1, null), null, 'a lower offset is ignored')
      t.equal(await markRead.call(broker, 'a', 'u1', 2, null), null, 'an equal one too')
      t.equal(await markRead.call(broker, 'a', 'u1', 50, null), 4, 'beyond the latest: clamped')
      t.strictSame(await node.readMoved(), { room: 'a', userId: 'u1', offset: 4, exclude: null }, 'the ignored ones were not heard')
      t.equal(await markRead.call(broker, 'empty', 'u1', 3, null), null, 'a room without messages has nothing to read')
      t.equal(await readPosition.call(broker, 'a', 'u1'), 4)
      t.equal(await readPosition.call(broker, 'a', 'u2'), 0, 'per user')
      await broker.publish(message('b'), null)
      t.equal(await markRead.call(broker, 'b', 'u1', 1, null), 1)
      t.strictSame(await readPositions.call(broker, 'u1'), { a: 4, b: 1 })
      t.strictSame(await readPositions.call(broker, 'nobody'), {})
    })

    t.test('closing twice is harmless', async (t) => {
      const { adapter } = await open(t)
      await adapter.broker.publish(message('a'), null)
      await t.resolves(async () => await adapter.close())
      await t.resolves(async () => await adapter.close())
    })
  })
}
