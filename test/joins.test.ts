import diagnostics from 'node:diagnostics_channel'
import t from 'tap'
import type { AuthorizeRequest } from '../index.js'
import { MemoryStore } from '../lib/stores/memory-store.js'
import type { HistoryPage } from '../lib/stores/history-store.js'
import { Client, listen, within } from './helpers/chat.js'

/** Counts how many calls are running at once, and the most there ever were. */
class Concurrency {
  active = 0
  peak = 0
  calls = 0

  async measure<T> (work: () => Promise<T>): Promise<T> {
    this.calls++
    this.peak = Math.max(this.peak, ++this.active)
    try {
      return await work()
    } finally {
      this.active--
    }
  }
}

// A turn of the event loop: long enough that joins started together overlap.
const aTurn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

/** A memory store whose history reads (each join's replay) take a turn and are counted. */
class CountedStore extends MemoryStore {
  readonly reads = new Concurrency()

  override async recent (room: string, limit: number): Promise<HistoryPage> {
    return await this.reads.measure(async () => {
      await aTurn()
      return await super.recent(room, limit)
    })
  }
}

t.test('300 joins with maxConcurrentJoins 2: every one gets joined, and never more than 2 run at once', async (t) => {
  const asked = new Concurrency()
  const store = new CountedStore()
  const { url } = await listen(t, {
    maxConcurrentJoins: 2,
    defaultRoom: null,
    store,
    authorize: async (request: AuthorizeRequest) => await asked.measure(async () => {
      await aTurn()
      return request.action === 'join'
    })
  })
  const COUNT = 300
  // Rooms of ten, so presence between them stays small.
  const clients = await Promise.all(Array.from({ length: COUNT }, async () => {
    const client = await Client.connect(url)
    t.teardown(() => client.close())
    await client.expect('welcome')
    return client
  }))
  // Every socket is open before any joins, so the joins arrive together, as in a reconnect storm.
  clients.forEach((client, i) => client.send({ type: 'join', room: `r${i % 30}` }))
  const joined = await within(Promise.all(clients.map(async (client, i) => {
    const frame = await client.expect('joined')
    return frame.room === `r${i % 30}`
  })), 30_000, 'every joined')
  t.equal(joined.filter(Boolean).length, COUNT, 'every join answered with joined for its room')
  t.equal(asked.calls, COUNT, 'authorize asked once per join')
  t.equal(asked.peak, 2, `authorize: at most 2 at once, and the gate let 2 run together (saw ${asked.peak}, reads ${store.reads.peak})`)
  // Joins of one room share its read until its next message (the broker's read cache): one per room at least.
  t.ok(store.reads.calls >= 30 && store.reads.calls <= COUNT, `history read for every room (${store.reads.calls} reads)`)
  t.ok(store.reads.peak <= 2, `history reads: at most 2 at once (saw ${store.reads.peak})`)
})

t.test('refused joins (authorize threw) give their turn on: a join waiting behind them is answered', async (t) => {
  let refused = 0
  const { url } = await listen(t, {
    maxConcurrentJoins: 1,
    authorize: async (request: AuthorizeRequest) => {
      await aTurn()
      if (request.room === 'closed') {
        refused++
        throw new Error('the app failed')
      }
      return true
    }
  })
  const doomed = await Promise.all(Array.from({ length: 5 }, async () => await Client.connect(url, '/chat?room=closed')))
  const last = await Client.connect(url, '/chat?room=open')
  t.teardown(() => { for (const client of [...doomed, last]) client.close() })
  for (const client of doomed) {
    await client.expect('welcome')
    t.match(await client.expect('error'), { code: 'forbidden', room: 'closed' })
  }
  await last.expect('welcome')
  t.match(await last.expect('joined'), { room: 'open' })
  t.equal(refused, 5)
})

t.test('a socket that closes while its join waits for a turn costs nothing when the turn comes', async (t) => {
  const asked: string[] = []
  let open = (): void => {}
  const opened = new Promise<void>((resolve) => { open = resolve })
  const { url } = await listen(t, {
    maxConcurrentJoins: 1,
    authorize: async (request: AuthorizeRequest) => {
      asked.push(request.room)
      if (request.room === 'slow') await opened
      return true
    }
  })
  const first = await Client.connect(url, '/chat?room=slow')
  t.teardown(() => first.close())
  await first.expect('welcome')
  // The gateway queues a socket's auto-join as it sends welcome: this one waits behind the slow join.
  const gone = await Client.connect(url, '/chat?room=never')
  await gone.expect('welcome')
  const closedOnServer = new Promise<void>((resolve) => {
    const onEvent = (message: unknown): void => {
      if ((message as { event: string }).event !== 'closed') return
      diagnostics.unsubscribe('fastify-chat:connection', onEvent)
      resolve()
    }
    diagnostics.subscribe('fastify-chat:connection', onEvent)
  })
  gone.close()
  await within(closedOnServer, 3000, 'the server to see the close')
  const later = await Client.connect(url, '/chat?room=later')
  t.teardown(() => later.close())
  await later.expect('welcome')
  open()
  t.match(await first.expect('joined'), { room: 'slow' })
  t.match(await later.expect('joined'), { room: 'later' })
  t.same(asked, ['slow', 'later'], 'the closed socket\'s join asked nothing')
})
