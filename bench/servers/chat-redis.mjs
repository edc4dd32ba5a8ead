// fastify-chat as in chat.mjs, but one of several instances sharing history,
// presence and fan-out through the Redis at REDIS_URL.
import Fastify from 'fastify'
import fastifyChat, { redisAdapter } from '../../dist/index.js'
import { listenOptions, serve } from './control.mjs'

const app = Fastify({ logger: false })
await app.register(fastifyChat, {
  rateLimit: false,
  heartbeatInterval: 0,
  maxConnections: 100_000,
  defaultRoom: 'bench',
  historySize: 100,
  adapter: redisAdapter({ url: process.env.REDIS_URL, prefix: process.env.REDIS_PREFIX ?? 'bench' })
})
await app.listen(listenOptions())
serve(app.server.address().port, { stats: () => app.chat.stats() })
