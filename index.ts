import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { Adapter } from './lib/broker/adapter.js'
import { MemoryAdapter } from './lib/broker/local-adapter.js'
import { Admission } from './lib/transport/admission.js'
import { CloseCode } from './lib/close-codes.js'
import { Gateway } from './lib/transport/gateway.js'
import { Hub } from './lib/chat/hub.js'
import type { Chat } from './lib/chat/hub.js'
import { resolveOptions } from './lib/options.js'
import type { FastifyChatOptions } from './lib/options.js'
import { Session } from './lib/chat/session.js'
import { Stats } from './lib/stats.js'
import type { HistoryStore } from './lib/stores/history-store.js'
import { MemoryStore } from './lib/stores/memory-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Broadcast, presence, history and stats of fastify-chat. */
    chat: Chat
  }
}

let clientScript: Promise<string> | null = null

/** The compiled browser client, read once. */
async function readClientScript (): Promise<string> {
  // Next to the compiled index.js it is lib/client.js; when this module runs
  // from source (the tests), the compiled copy is under dist/.
  clientScript ??= readFile(new URL('./lib/client.js', import.meta.url), 'utf8')
    .catch(() => readFile(new URL('./dist/lib/client.js', import.meta.url), 'utf8'))
    // The source map is not served, so the comment would only earn a 404.
    .then((code) => code.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'))
    .catch((err: unknown) => {
      clientScript = null
      throw err
    })
  return await clientScript
}

const plugin: FastifyPluginAsync<FastifyChatOptions> = async function fastifyChat (fastify, rawOpts) {
  const opts = resolveOptions(rawOpts)

  // History comes from the adapter when it keeps its own (Redis), else the store.
  const adapter: Adapter = opts.adapter ?? new MemoryAdapter()
  const ownStore = opts.store === null && adapter.store === undefined
  const store: HistoryStore = adapter.store ?? opts.store ?? new MemoryStore({ size: opts.historySize })
  await store.init?.()
  const stats = new Stats()
  const hub = new Hub(opts, store, adapter, stats, fastify.log)
  await adapter.start(hub.node, { historySize: opts.historySize, store, log: fastify.log })

  const ownWebsocket = !fastify.hasDecorator('websocketServer')
  if (ownWebsocket) {
    await fastify.register(fastifyWebsocket, {
      options: { maxPayload: opts.maxPayload },
      // The default preClose closes sockets without a code; ours says 1001.
      preClose (done) {
        for (const client of this.websocketServer.clients) client.close(CloseCode.GOING_AWAY, 'server shutting down')
        this.websocketServer.close()
        done()
      }
    })
  }

  fastify.decorate('chat', hub as Chat)

  const gateway = new Gateway({
    opts,
    hub,
    session: new Session(hub, opts),
    admission: new Admission(opts),
    stats,
    payloadEnforced: ownWebsocket,
    secret: await adapter.secret?.() ?? randomBytes(32).toString('base64url')
  })
  fastify.get(opts.path, {
    websocket: true,
    onRequest: gateway.admit,
    preValidation: gateway.identify,
    onResponse: gateway.answered
  }, (socket, request) => {
    if (!ownWebsocket) {
      // The host's @fastify/websocket closes its tracked clients without a
      // code on shutdown; our preClose closes ours with 1001 instead.
      fastify.websocketServer.clients.delete(socket)
    }
    gateway.connect(socket, request)
  })

  if (opts.serveClient) {
    fastify.get(`${opts.path.replace(/\/$/, '')}/client.js`, async (_request, reply) => {
      return await reply
        .type('text/javascript; charset=utf-8')
        .header('cache-control', 'no-cache')
        .send(await readClientScript())
    })
  }

  // One timer for every socket: a dead peer is found within two intervals.
  const heartbeat = opts.heartbeatInterval === 0 ? undefined : setInterval(() => hub.heartbeat(), opts.heartbeatInterval)
  heartbeat?.unref()

  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat)
    await hub.closeAll(CloseCode.GOING_AWAY, 'server shutting down', opts.closeTimeout)
  })
  fastify.addHook('onClose', async () => {
    // The adapter closes only the connections it made itself; a store handed in is the user's.
    await adapter.close()
    if (ownStore) await store.close?.()
  })
}

/** Real-time chat over WebSockets: one `register` call adds the route and `app.chat`. */
export const fastifyChat = fp(plugin, { fastify: '5.x', name: 'fastify-chat' })
export default fastifyChat

export { CloseCode } from './lib/close-codes.js'
export { FST_CHAT_ADAPTER_UNAVAILABLE, FST_CHAT_CLOSED, FST_CHAT_INVALID_ARGUMENT, FST_CHAT_INVALID_MESSAGE, FST_CHAT_INVALID_OPTION, FST_CHAT_INVALID_ROOM } from './lib/errors.js'
export { defaults } from './lib/options.js'
export type { ChatClient, FastifyChatOptions, Identity, OutgoingMessage } from './lib/options.js'
export type { RateLimit } from './lib/transport/rate-limit.js'
export { channels } from './lib/stats.js'
export type { ChatStats, DropReason, RefusalReason } from './lib/stats.js'
export type { BroadcastOptions, Chat, HistoryOptions } from './lib/chat/hub.js'
export type { Adapter, AdapterContext, AdapterNode, PresenceEvent, PublishResult } from './lib/broker/adapter.js'
export type { HistoryPage, HistoryStore, NewMessage } from './lib/stores/history-store.js'
export { MemoryStore } from './lib/stores/memory-store.js'
export { redisAdapter, RedisAdapter } from './lib/broker/redis/redis-adapter.js'
export type { RedisAdapterOptions, RedisClient } from './lib/broker/redis/redis-adapter.js'
export type { MemoryStoreOptions } from './lib/stores/memory-store.js'
export type * from './lib/protocol/wire.js'
export { sqliteStore, SqliteStore } from './lib/stores/sqlite-store.js'
export type { SqliteRetention, SqliteStoreOptions } from './lib/stores/sqlite-store.js'
export { FST_CHAT_STORE_UNAVAILABLE } from './lib/errors.js'
