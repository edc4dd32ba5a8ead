// The Redis adapter's history behaves like every other store.
import Fastify from 'fastify'
import t from 'tap'
import { RedisAdapter } from '../../lib/broker/redis/redis-adapter.js'
import type { HistoryStore } from '../../lib/stores/history-store.js'
import { conformance, WINDOW } from '../helpers/store-conformance.js'
import { startRedis } from '../helpers/redis.js'

const redis = await startRedis(t)
const log = Fastify().log
let stores = 0

/** A fresh Redis-backed store: its own key prefix, appends through the adapter's publish script. */
function redisStore (): HistoryStore {
  const adapter = new RedisAdapter({ url: redis.url, prefix: `conformance-${++stores}` })
  const node = { deliver: () => {}, presence: () => {} }
  return {
    init: async () => {
      await adapter.start(node, { historySize: WINDOW, store: adapter.store, log })
    },
    append: async (message) => (await adapter.publish(message, null)).message,
    recent: async (room, limit) => await adapter.store.recent(room, limit),
    since: async (room, offset) => await adapter.store.since(room, offset),
    epoch: async (room) => await adapter.store.epoch(room),
    close: async () => await adapter.close()
  }
}

conformance(t, 'Redis (stream capped at historySize)', async () => redisStore())
