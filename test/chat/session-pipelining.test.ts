// A sender's publishes overlap: its next frames are read while earlier
// messages are still being stored. Shown here with a store whose appends
// wait until the test lets them through (a slow disk, say).
import t from 'tap'
import type { Test } from 'tap'
import type { AuthorizeRequest, ServerFrame } from '../../index.js'
import { MAX_IN_FLIGHT } from '../../lib/chat/publishing.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { AppendResult, NewMessage } from '../../lib/stores/history-store.js'
import { Client, join, listen, within } from '../helpers/chat.js'

class GatedStore extends MemoryStore {
  appends = 0
  /** Texts whose append fails, as a full disk would. */
  readonly failing = new Set<string>()
  #gate: Promise<void> | null = null
  #open = (): void => {}

  hold (): void {
    this.#gate = new Promise((resolve) => { this.#open = resolve })
  }

  release (): void {
    this.#gate = null
    this.#open()
  }

  override async append (message: NewMessage): Promise<AppendResult> {
    this.appends++
    if (this.#gate !== null) await this.#gate
    if (this.failing.has(message.text)) throw new Error(`no room left on the disk for ${message.text}`)
    return await super.append(message)
  }
}

/** Counts `publish` authorizations per user name, and resolves waiters at a given count. */
class PublishCounter {
  readonly counts = new Map<string, number>()
  #waiters: Array<{ name: string, count: number, resolve: () => void }> = []

  readonly authorize = (request: AuthorizeRequest): boolean => {
    if (request.action !== 'publish') return true
    const { name } = request.client
    const count = (this.counts.get(name) ?? 0) + 1
    this.counts.set(name, count)
    this.#waiters = this.#waiters.filter((w) => {
      if (w.name !== name || w.count !== count) return true
      w.resolve()
      return false
    })
    return true
  }

  async reached (name: string, count: number): Promise<void> {
    if ((this.counts.get(name) ?? 0) >= count) return
    await within(new Promise<void>((resolve) => this.#waiters.push({ name, count, resolve })), 5000, `${count} publishes from ${name}`)
  }
}

/** Reads frames until `messages` messages and `errors` errors have come; anything else is skipped. */
async function collect (client: Client, messages: number, errors = 0): Promise<{ messages: Array<Extract<ServerFrame, { type: 'message' }>>, errors: Array<Extract<ServerFrame, { type: 'error' }>> }> {
  const out = { messages: [] as Array<Extract<ServerFrame, { type: 'message' }>>, errors: [] as Array<Extract<ServerFrame, { type: 'error' }>> }
  for (let frames = 0; frames < 10 * (messages + errors) + 10 && (out.messages.length < messages || out.errors.length < errors); frames++) {
    const frame = await client.next()
    if (frame.type === 'message') out.messages.push(frame)
    else if (frame.type === 'error') out.errors.push(frame)
  }
  return out
}

async function room (t: Test): Promise<{ store: GatedStore, counter: PublishCounter, alice: Client, bob: Client }> {
  const store = new GatedStore()
  const counter = new PublishCounter()
  const { url } = await listen(t, { store, rateLimit: false, authorize: counter.authorize })
  const alice = await join(url, '?name=alice')
  const bob = await join(url, '?name=bob')
  t.match(await alice.expect('presence'), { event: 'join', user: { name: 'bob' } })
  return { store, counter, alice, bob }
}

t.test(`a sender's frames go on while its messages are stored, ${MAX_IN_FLIGHT} at most on their way; order holds`, async (t) => {
  const { store, counter, alice, bob } = await room(t)
  store.hold()
  for (let i = 0; i < 100; i++) alice.send({ type: 'message', text: `m${i}`, cid: `c${i}` })
  // Each frame is checked (authorize) before its publish is issued: 64 issued and the 65th checked, waiting for a slot.
  await counter.reached('alice', MAX_IN_FLIGHT + 1)
  t.equal(store.appends, 1, 'the first append has not finished, yet 64 more frames were handled')
  bob.send({ type: 'message', text: 'from bob' })
  await counter.reached('bob', 1)
  t.equal(counter.counts.get('alice'), MAX_IN_FLIGHT + 1, 'a frame arriving since, on another socket, was handled; alice\'s 66th waits')
  store.release()
  const seen = await Promise.all([alice, bob].map(async (client) => (await collect(client, 101)).messages))
  for (const [i, messages] of seen.entries()) {
    const own = messages.filter((m) => m.from.name === 'alice')
    t.same(own.map((m) => m.cid), Array.from({ length: 100 }, (_, n) => `c${n}`), `${i === 0 ? 'alice' : 'bob'}: alice's messages in her order`)
    t.ok(messages.every((m, n) => n === 0 || m.offset === (messages[n - 1]?.offset ?? 0) + 1), 'offsets consecutive')
  }
  t.same(seen[1], seen[0], 'both saw one order')
  t.equal(counter.counts.get('alice'), 100)
})

t.test('a retry of a cid still being stored is not sent again', async (t) => {
  const { store, alice, bob } = await room(t)
  store.hold()
  alice.send({ type: 'message', text: 'first try', cid: 'x' })
  alice.send({ type: 'message', text: 'retry', cid: 'x' })
  // Frames are handled in order: the answer to this one means the retry was handled.
  alice.send('{')
  t.match(await alice.expect('error'), { code: 'invalid_message' })
  t.equal(store.appends, 1, 'one append')
  store.release()
  t.match(await alice.expect('message'), { text: 'first try', cid: 'x', offset: 1 })
  t.match(await bob.expect('message'), { text: 'first try', cid: 'x', offset: 1 })
  alice.send({ type: 'message', text: 'retry once stored', cid: 'x' })
  t.match(await alice.expect('message'), { text: 'first try', cid: 'x', offset: 1 }, 'a later retry gets the stored copy back')
  alice.send({ type: 'message', text: 'marker' })
  t.match(await bob.expect('message'), { text: 'marker', offset: 2 }, 'bob got nothing else')
  t.equal(store.appends, 2)
})

t.test('each failed publish is answered unavailable with its own cid; the others go out in order, and the failed ones can be sent again', async (t) => {
  const { store, alice, bob } = await room(t)
  store.failing.add('m3').add('m7')
  store.hold()
  for (let i = 0; i < 10; i++) alice.send({ type: 'message', text: `m${i}`, cid: `c${i}` })
  store.release()
  const got = await collect(alice, 8, 2)
  t.same(got.messages.map((m) => m.cid), ['c0', 'c1', 'c2', 'c4', 'c5', 'c6', 'c8', 'c9'])
  t.same(got.messages.map((m) => m.offset), [1, 2, 3, 4, 5, 6, 7, 8])
  t.same(got.errors.map((e) => [e.code, e.cid]).sort(), [['unavailable', 'c3'], ['unavailable', 'c7']])
  t.same((await collect(bob, 8)).messages.map((m) => m.cid), ['c0', 'c1', 'c2', 'c4', 'c5', 'c6', 'c8', 'c9'])
  store.failing.clear()
  alice.send({ type: 'message', text: 'm3', cid: 'c3' })
  t.match(await bob.expect('message'), { cid: 'c3', offset: 9 }, 'the failed cid was forgotten, so its retry is sent')
})

t.test('a sender that closes with publishes on their way: they still go out, and their answers throw nothing', async (t) => {
  const { store, counter, alice, bob } = await room(t)
  store.hold()
  for (let i = 0; i < 10; i++) alice.send({ type: 'message', text: `m${i}`, cid: `c${i}` })
  await counter.reached('alice', 10)
  alice.ws.terminate()
  t.match(await bob.expect('presence'), { event: 'leave', user: { name: 'alice' } })
  store.failing.add('m9')
  store.release()
  const { messages } = await collect(bob, 9)
  t.same(messages.map((m) => m.text), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8'])
  bob.send({ type: 'message', text: 'marker' })
  t.match(await bob.expect('message'), { text: 'marker', offset: 10 }, 'the server goes on')
})
