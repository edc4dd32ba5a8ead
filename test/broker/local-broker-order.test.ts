import t from 'tap'
import { LocalBroker } from '../../lib/broker/local-broker.js'
import type { BrokerNode } from '../../lib/broker/broker.js'
import type { ChatMessage } from '../../lib/protocol/wire.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { AppendResult, NewMessage } from '../../lib/stores/history-store.js'

/** A store whose appends each wait until the test lets them through (a slow database, say), in any order it likes. */
class HeldStore extends MemoryStore {
  readonly calls: string[] = []
  readonly #waiting = new Map<string, { release: () => void, fail: (err: Error) => void }>()

  override async append (message: NewMessage): Promise<AppendResult> {
    this.calls.push(message.text)
    await new Promise<void>((resolve, reject) => this.#waiting.set(message.text, { release: resolve, fail: reject }))
    return await super.append(message)
  }

  release (text: string): void {
    this.#waiting.get(text)?.release()
  }

  fail (text: string): void {
    this.#waiting.get(text)?.fail(new Error(`store down for ${text}`))
  }
}

function message (text: string, room = 'r'): NewMessage {
  return { room, ts: 1, from: { id: 'u', name: 'U' }, text }
}

/** Resolves once the store has been called for `text`; appends start on a later tick once the one before settles. */
async function called (store: HeldStore, text: string): Promise<void> {
  for (let turns = 0; turns < 1000 && !store.calls.includes(text); turns++) await new Promise((resolve) => setImmediate(resolve))
  if (!store.calls.includes(text)) throw new Error(`append of ${text} never started`)
}

t.test('overlapping publishes to one room are appended one at a time, numbered and delivered in call order', async (t) => {
  const store = new HeldStore()
  const broker = new LocalBroker(store)
  const delivered: string[] = []
  const node: BrokerNode = { deliver: (m: ChatMessage) => { delivered.push(`${m.text}@${m.offset}`) }, reset: () => {} }
  broker.start(node)
  const published = ['a', 'b', 'c'].map(async (text) => await broker.publish(message(text), null))
  const elsewhere = broker.publish(message('x', 'other'), null)
  await called(store, 'x')
  t.same(store.calls, ['a', 'x'], 'b waits for a; another room does not')
  store.release('x')
  await elsewhere
  store.release('a')
  await called(store, 'b')
  store.release('b')
  await called(store, 'c')
  store.release('c')
  const results = await Promise.all(published)
  t.same(results.map((r) => r.message.offset), [1, 2, 3])
  t.same(delivered, ['x@1', 'a@1', 'b@2', 'c@3'])
})

t.test('a failed append fails its own publish only; the next one goes on', async (t) => {
  const store = new HeldStore()
  const broker = new LocalBroker(store)
  broker.start({ deliver: () => {}, reset: () => {} })
  const first = broker.publish(message('a'), null)
  const second = broker.publish(message('b'), null)
  await called(store, 'a')
  store.fail('a')
  await t.rejects(first, /store down for a/)
  await called(store, 'b')
  store.release('b')
  t.equal((await second).message.offset, 1)
  const third = broker.publish(message('c'), null)
  await called(store, 'c')
  store.release('c')
  t.equal((await third).message.offset, 2, 'a room with nothing running starts afresh')
})
