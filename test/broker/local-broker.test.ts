import t from 'tap'
import { LocalBroker } from '../../lib/broker/local-broker.js'
import type { Broker, BrokerNode } from '../../lib/broker/broker.js'
import type { ChatMessage } from '../../lib/protocol/wire.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { NewMessage } from '../../lib/stores/history-store.js'

/** A node that records what is handed back to it. */
function recorder (): BrokerNode & { delivered: Array<[ChatMessage, string | null]> } {
  const delivered: Array<[ChatMessage, string | null]> = []
  return { delivered, deliver: (message, exclude) => { delivered.push([message, exclude]) }, reset: () => {} }
}

function message (text: string, room = 'r'): NewMessage {
  return { room, ts: 1, from: { id: 'u', name: 'U' }, text }
}

t.test('publish stores the message through the store and hands it straight back to this server', async (t) => {
  const store = new MemoryStore()
  const broker = new LocalBroker(store)
  const node = recorder()
  broker.start(node)
  const result = await broker.publish(message('hi'), 'conn-1')
  t.strictSame(result, { message: { ...message('hi'), offset: 1 }, duplicate: false })
  t.equal(node.delivered.length, 1)
  t.equal(node.delivered[0][0], result.message, 'the stored message itself')
  t.equal(node.delivered[0][1], 'conn-1', 'with exclude passed through')
  t.strictSame((await store.recent('r', 10)).messages, [result.message], 'in the store')
  await broker.publish(message('again', 'other'), null)
  t.strictSame(node.delivered.map(([m, exclude]) => [m.room, m.offset, exclude]), [['r', 1, 'conn-1'], ['other', 1, null]], 'every room, whatever is subscribed')
})

t.test('a cid the store already holds is delivered to nobody, and the stored copy comes back', async (t) => {
  const store = new MemoryStore({ size: 2 })
  const broker = new LocalBroker(store)
  const node = recorder()
  broker.start(node)
  const first = await broker.publish({ ...message('hi'), cid: 'c1' }, 'conn-1')
  await broker.publish(message('filler 1'), null)
  await broker.publish(message('filler 2'), null)
  const again = await broker.publish({ ...message('hi, again'), cid: 'c1' }, 'conn-2')
  t.strictSame(again, { message: first.message, duplicate: true }, 'the first copy, though trimmed from the history since')
  t.strictSame(node.delivered.map(([m]) => m.text), ['hi', 'filler 1', 'filler 2'], 'the resend was not delivered')
  t.equal((await broker.recent('r', 10)).offset, 3)
})

t.test('before start and after close nothing is delivered, but messages are still stored', async (t) => {
  const broker = new LocalBroker(new MemoryStore())
  await broker.publish(message('early'), null)
  const node = recorder()
  broker.start(node)
  await broker.publish(message('live'), null)
  broker.close()
  await broker.publish(message('late'), null)
  t.strictSame(node.delivered.map(([m]) => m.text), ['live'])
  t.strictSame((await broker.recent('r', 10)).messages.map((m) => m.text), ['early', 'live', 'late'])
})

t.test('recent and since read the store', async (t) => {
  const store = new MemoryStore({ size: 3 })
  const broker = new LocalBroker(store)
  for (let i = 1; i <= 5; i++) await broker.publish(message(`m${i}`), null)
  t.strictSame(await broker.recent('r', 2), await store.recent('r', 2))
  t.strictSame((await broker.recent('r', 2)).messages.map((m) => m.offset), [4, 5])
  t.strictSame((await broker.since('r', 3))?.messages.map((m) => m.offset), [4, 5])
  t.equal(await broker.since('r', 1), null, 'a gap')
})

t.test('a store failure reaches the caller, and nothing is delivered', async (t) => {
  const store = new MemoryStore()
  store.append = async () => { throw new Error('disk full') }
  const broker = new LocalBroker(store)
  const node = recorder()
  broker.start(node)
  await t.rejects(broker.publish(message('lost'), null), { message: 'disk full' })
  t.strictSame(node.delivered, [])
})

t.test('subscribing is a no-op: one server gets every room', async (t) => {
  const broker: Broker = new LocalBroker(new MemoryStore())
  await t.resolves(broker.subscribe('r'))
  await t.resolves(broker.unsubscribe('r'))
})

t.test('before: the store\'s, read anew each time (not shared like recent), and absent when the store has none', async (t) => {
  // Counts the reads that reach the store.
  class CountingStore extends MemoryStore {
    reads = 0
    override async before (room: string, offset: number, limit: number): ReturnType<MemoryStore['before']> {
      this.reads++
      return await super.before(room, offset, limit)
    }
  }
  const store = new CountingStore()
  const broker = new LocalBroker(store)
  broker.start(recorder())
  await broker.subscribe('r')
  for (let i = 1; i <= 5; i++) await broker.publish(message(`m${i}`), null)
  const pages = await Promise.all([broker.before?.('r', 5, 2), broker.before?.('r', 5, 2)])
  t.strictSame(pages.map((page) => page?.messages.map((m) => m.offset)), [[3, 4], [3, 4]])
  t.equal(store.reads, 2, 'each call read the store')

  const without: Broker = new LocalBroker({
    append: async (m) => await store.append(m),
    entry: async (room, offset) => await store.entry(room, offset),
    recent: async (room, limit) => await store.recent(room, limit),
    since: async (room, offset) => await store.since(room, offset),
    epoch: async (room) => await store.epoch(room)
  })
  t.equal(without.before, undefined, 'a store without before(): a broker without it')
})
