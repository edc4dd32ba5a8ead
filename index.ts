import { randomBytes } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import { createChat } from './lib/api.js'
import type { Chat } from './lib/api.js'
import { Access } from './lib/chat/access.js'
import { Hub } from './lib/chat/hub.js'
import { Moderation } from './lib/chat/moderation.js'
import { PresenceTracker } from './lib/chat/presence-tracker.js'
import { Scrollback } from './lib/chat/scrollback.js'
import { Session } from './lib/chat/session.js'
import { CloseCode } from './lib/close-codes.js'
import { resolveOptions } from './lib/options.js'
import type { FastifyChatOptions } from './lib/options.js'
import { Stats } from './lib/stats.js'
import { Admission } from './lib/transport/admission.js'
import { Connections } from './lib/transport/connections.js'
import { Gateway } from './lib/transport/gateway.js'
import { untrackClient } from './lib/transport/ws-internals.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Broadcast, presence, history and stats of fastify-chat. */
    chat: Chat
  }
}

// The compiled browser client: next to the compiled index.js it is under
// lib/; when this module runs from source (the tests), under dist/lib/.
const clientDirs = ['./lib/', './dist/lib/'].map((dir) => new URL(dir, import.meta.url))
const clientScripts = new Map<string, Promise<string>>()

/** A file of the compiled browser client (`client.js`, `client/<module>.js`), read once. */
async function readClientScript (file = 'client.js'): Promise<string> {
  let script = clientScripts.get(file)
  if (script === undefined) {
    const [beside, underDist] = clientDirs.map((dir) => new URL(file, dir))
    script = readFile(beside as URL, 'utf8')
      .catch(() => readFile(underDist as URL, 'utf8'))
      // The source map is not served, so the comment would only earn a 404.
      .then((code) => code.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'))
      .catch((err: unknown) => {
        clientScripts.delete(file)
        throw err
      })
    clientScripts.set(file, script)
  }
  return await script
}

/**
 * The modules client.js imports, `<name>.js` of lib/client/: the only names
 * `<path>/client/:file` serves, listed once so no request reaches the disk
 * with a name of its own. Empty when the client is not built.
 */
async function listClientModules (): Promise<Set<string>> {
  for (const dir of clientDirs) {
    const names = await readdir(new URL('client/', dir)).catch(() => [])
    const modules = names.filter((name) => /^[a-z0-9-]+\.js$/.test(name))
    if (modules.length > 0) return new Set(modules)
  }
  return new Set()
}

const plugin: FastifyPluginAsync<FastifyChatOptions> = async function fastifyChat (fastify, rawOpts) {
  const opts = resolveOptions(rawOpts)

  const { adapter } = opts
  const stats = new Stats()
  const connections = new Connections(stats)
  const presence = new PresenceTracker(adapter.presence, opts.presenceGraceMs, fastify.log)
  const hub = new Hub({
    broker: adapter.broker,
    presence,
    connections,
    stats,
    historySize: opts.historySize,
    maxRoomsPerClient: opts.maxRoomsPerClient,
    presenceListMax: opts.presenceListMax,
    presenceEventsMax: opts.presenceEventsMax,
    occupancyIntervalMs: opts.occupancyIntervalMs
  })
  const moderation = new Moderation(hub, adapter.control, connections)
  await adapter.start({ node: { ...hub.node, command: (command, openBefore) => moderation.apply(command, openBefore) }, historySize: opts.historySize, log: fastify.log })

  fastify.decorate('chat', createChat({
    hub,
    moderation,
    broker: adapter.broker,
    presence,
    connections,
    stats,
    historySize: opts.historySize,
    maxMessageLength: opts.maxMessageLength,
    maxMetaBytes: opts.maxMetaBytes,
    metaSchema: opts.metaSchema,
    presenceListMax: opts.presenceListMax,
    maxHistoryPage: opts.maxHistoryPage
  }))

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

  const access = new Access(opts.authorize)
  const gateway = new Gateway({
    opts,
    hub,
    session: new Session({ hub, opts, access, control: adapter.control, moderation, scrollback: new Scrollback(adapter.broker, access, opts.maxHistoryPage) }),
    admission: new Admission(opts),
    stats,
    payloadEnforced: ownWebsocket,
    secret: opts.secret ?? await adapter.secret?.() ?? randomBytes(32).toString('base64url')
  })
  fastify.get(opts.path, {
    websocket: true,
    onRequest: gateway.admit,
    preValidation: gateway.identify,
    onResponse: gateway.answered
  }, (socket, request) => {
    // The host's @fastify/websocket closes its tracked clients without a
    // code on shutdown; our preClose closes ours with 1001 instead.
    if (!ownWebsocket) untrackClient(fastify.websocketServer, socket)
    gateway.connect(socket, request)
  })

  if (opts.serveClient) {
    const base = opts.path.replace(/\/$/, '')
    const modules = await listClientModules()
    const serve = async (file: string, reply: FastifyReply): Promise<FastifyReply> => await reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send(await readClientScript(file))
    fastify.get(`${base}/client.js`, async (_request, reply) => await serve('client.js', reply))
    fastify.get<{ Params: { file: string } }>(`${base}/client/:file`, async (request, reply) => {
      const { file } = request.params
      if (!modules.has(file)) return reply.callNotFound()
      return await serve(`client/${file}`, reply)
    })
  }

  // One timer for every socket: a dead peer is found within two intervals.
  const heartbeat = opts.heartbeatInterval === 0 ? undefined : setInterval(() => connections.heartbeat(), opts.heartbeatInterval)
  heartbeat?.unref()

  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat)
    await hub.close(CloseCode.GOING_AWAY, 'server shutting down')
  })
  // The adapter closes only what it made itself: a store or Redis client handed in is the user's.
  fastify.addHook('onClose', async () => await adapter.close())
}

/** Real-time chat over WebSockets: one `register` call adds the route and `app.chat`. */
export const fastifyChat = fp(plugin, { fastify: '5.x', name: 'fastify-chat' })
export default fastifyChat

// Options and the facade.
export { defaults } from './lib/options.js'
export type { AuthorizeRequest, FastifyChatOptions, Identity, OutgoingMessage, Refreshed } from './lib/options.js'
export type { RateLimit } from './lib/transport/rate-limit.js'
export type { BroadcastOptions, Chat, DisconnectTarget, HistoryBeforeOptions, HistoryOptions, ModerationOptions, PresenceOptions } from './lib/api.js'
export type { ChatClient } from './lib/chat/client-view.js'

// Errors and close codes.
export {
  FST_CHAT_ADAPTER_UNAVAILABLE,
  FST_CHAT_CLOSED,
  FST_CHAT_INVALID_ARGUMENT,
  FST_CHAT_INVALID_MESSAGE,
  FST_CHAT_INVALID_OPTION,
  FST_CHAT_INVALID_ROOM,
  FST_CHAT_STORE_UNAVAILABLE,
  FST_CHAT_UNSUPPORTED
} from './lib/errors.js'
export { CloseCode } from './lib/close-codes.js'

// History stores.
export { MemoryStore } from './lib/stores/memory-store.js'
export type { MemoryStoreOptions } from './lib/stores/memory-store.js'
export { sqliteStore, SqliteStore } from './lib/stores/sqlite-store.js'
export type { SqliteRetention, SqliteStoreOptions } from './lib/stores/sqlite-store.js'
export type { AppendResult, HistoryPage, HistoryStore, NewMessage, OlderPage } from './lib/stores/history-store.js'

// Adapters: the seam to other servers.
export { redisAdapter, RedisAdapter } from './lib/broker/redis/redis-adapter.js'
export type { RedisAdapterOptions, RedisClient, RedisClusterNode } from './lib/broker/redis/redis-adapter.js'
export type { Adapter, AdapterContext, AdapterNode } from './lib/broker/adapter.js'
export type { Broker, BrokerNode, PublishResult } from './lib/broker/broker.js'
export type { Control, ControlCommand, ControlNode } from './lib/broker/control.js'
export type { PageRequest, Presence, PresenceEvent, PresenceNode, PresencePage } from './lib/broker/presence.js'

// Diagnostics, and the wire protocol's types.
export { channels } from './lib/stats.js'
export type { ChatStats, DropReason, RefusalReason } from './lib/stats.js'
export type * from './lib/protocol/wire.js'
