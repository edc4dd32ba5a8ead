// Every adapter's broker behaves the same: the in-process one and Redis's.
import t from 'tap'
import { LocalAdapter } from '../../lib/broker/local-adapter.js'
import { RedisAdapter } from '../../lib/broker/redis/redis-adapter.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import type { HistoryStore } from '../../lib/stores/history-store.js'
import { brokerConformance, WINDOW } from '../helpers/broker-conformance.js'
import { startRedis } from '../helpers/redis.js'

brokerConformance(t, 'LocalAdapter', async (context) => {
  const adapter = new LocalAdapter(new MemoryStore({ size: WINDOW }), true)
  await adapter.start(context)
  return { adapter, teardown: async () => await adapter.close() }
}, { dedupesCids: false, deliversSubscribedOnly: false })

// A store of the user's own that keeps no read positions: the adapter keeps them in memory.
brokerConformance(t, 'LocalAdapter (a store without read positions)', async (context) => {
  const memory = new MemoryStore({ size: WINDOW })
  const store: HistoryStore = {
    append: async (message) => await memory.append(message),
    recent: async (room, limit) => await memory.recent(room, limit),
    since: async (room, offset) => await memory.since(room, offset),
    epoch: async (room) => await memory.epoch(room),
    entry: async (room, offset) => await memory.entry(room, offset),
    before: async (room, offset, limit) => await memory.before(room, offset, limit)
  }
  const adapter = new LocalAdapter(store, true)
  await adapter.start(context)
  return { adapter, teardown: async () => await adapter.close() }
}, { dedupesCids: false, deliversSubscribedOnly: false })

const redis = await startRedis(t)
let chats = 0
brokerConformance(t, 'RedisAdapter', async (context) => {
  // A prefix of its own: a fresh, empty chat on the file's redis-server.
  const adapter = new RedisAdapter({ url: redis.url, prefix: `conformance-${++chats}` })
  await adapter.start(context)
  return { adapter, teardown: async () => await adapter.close() }
}, { dedupesCids: true, deliversSubscribedOnly: true })
