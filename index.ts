import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import { MemoryAdapter } from './lib/adapters/memory-adapter.js'
import { Connection, randomId } from './lib/connection.js'
import { CloseCode, Hub } from './lib/hub.js'
import type { Chat } from './lib/hub.js'
import { resolveOptions } from './lib/options.js'
import type { FastifyChatOptions, Identity } from './lib/options.js'
import { isRoomName, parseSinceParam, sanitizeName } from './lib/protocol.js'
import { Session } from './lib/session.js'
import { MemoryStore } from './lib/stores/memory-store.js'

// Frames a client may have waiting to be handled; past this it is sending
// faster than the store can take them.
const MAX_QUEUED_FRAMES = 256
const SHUTDOWN_TIMEOUT_MS = 2000

declare module 'fastify' {
  interface FastifyInstance {
    /** Broadcast, presence and history of fastify-chat. */
    chat: Chat
  }
}

interface ConnectQuery {
  name?: unknown
  room?: unknown
  since?: unknown
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

function guestName (): string {
  return `guest-${randomBytes(2).toString('hex')}`
}

const plugin: FastifyPluginAsync<FastifyChatOptions> = async function fastifyChat (fastify, rawOpts) {
  const opts = resolveOptions(rawOpts)

  const ownStore = opts.store === null
  const store = opts.store ?? new MemoryStore({ size: opts.historySize })
  const adapter = new MemoryAdapter()
  const hub = new Hub(opts, store, adapter)
  await adapter.start((message, exclude) => hub.deliver(message, exclude))
  const session = new Session(hub, opts)

  const ownWebsocket = !fastify.hasDecorator('websocketServer')
  if (ownWebsocket) {
    await fastify.register(fastifyWebsocket, {
      // The default preClose closes sockets without a code; ours says 1001.
      preClose (done) {
        for (const client of this.websocketServer.clients) client.close(CloseCode.GOING_AWAY, 'server shutting down')
        this.websocketServer.close()
        done()
      }
    })
  }

  fastify.decorate('chat', hub as Chat)

  const identities = new WeakMap<FastifyRequest, Identity>()

  async function identify (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (opts.identify === null) return
    let identity
    try {
      identity = await opts.identify(request)
    } catch (err) {
      const status = (err as { statusCode?: unknown })?.statusCode
      const code = typeof status === 'number' && status >= 400 && status < 500 ? status : 401
      request.log.info({ err }, 'fastify-chat: identify refused the connection')
      return await reply.code(code).send({ statusCode: code, error: 'Unauthorized', message: 'not identified' })
    }
    if (identity === false || typeof identity !== 'object' || identity === null) {
      request.log.info('fastify-chat: identify refused the connection')
      return await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'connection refused' })
    }
    identities.set(request, identity)
  }

  function onConnect (socket: WebSocket, request: FastifyRequest): void {
    if (hub.closed) {
      // The upgrade finished after shutdown began (identify was still running).
      socket.close(CloseCode.GOING_AWAY, 'server shutting down')
      const timer = setTimeout(() => socket.terminate(), SHUTDOWN_TIMEOUT_MS)
      socket.once('close', () => clearTimeout(timer))
      return
    }
    if (!ownWebsocket) {
      // The host's @fastify/websocket closes its tracked clients without a
      // code on shutdown; our preClose closes ours with 1001 instead.
      fastify.websocketServer.clients.delete(socket)
    }
    const query = (request.query ?? {}) as ConnectQuery
    const identity = identities.get(request) ?? {}
    const id = typeof identity.id === 'string' && identity.id !== '' ? identity.id : randomId()
    const askedName = identity.name ?? query.name
    const name = sanitizeName(askedName)
    const conn = new Connection(socket, request, id, name ?? guestName())

    // Listeners go on before anything async, or early frames would be lost.
    socket.removeAllListeners('error')
    socket.on('error', (err) => request.log.info({ err }, 'fastify-chat: socket error'))
    socket.on('close', () => hub.remove(conn))
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        socket.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not supported')
        return
      }
      if (conn.queued >= MAX_QUEUED_FRAMES) {
        socket.close(CloseCode.POLICY_VIOLATION, 'too many frames in flight')
        return
      }
      const raw = data.toString()
      conn.enqueue(() => session.handle(conn, raw).catch((err: unknown) => {
        request.log.error({ err }, 'fastify-chat: frame handling failed')
        conn.sendError('internal_error', 'the frame could not be handled')
      }))
    })

    hub.add(conn)
    conn.send({ type: 'welcome', id: conn.id, name: conn.name })
    if (askedName !== undefined && name === null) {
      conn.sendError('invalid_name', 'name must have 1 to 32 characters besides blanks and control characters; using a guest name')
    }

    const room = query.room ?? opts.defaultRoom
    if (room === null) return
    if (!isRoomName(room)) {
      conn.sendError('invalid_room', 'room names match ^[A-Za-z0-9_-]{1,64}$')
      return
    }
    const since = parseSinceParam(query.since) ?? undefined
    conn.enqueue(() => hub.join(conn, room, since))
  }

  fastify.get(opts.path, { websocket: true, preValidation: identify }, onConnect)

  if (opts.serveClient) {
    const clientPath = `${opts.path.replace(/\/$/, '')}/client.js`
    fastify.get(clientPath, async (_request, reply) => {
      return await reply
        .type('text/javascript; charset=utf-8')
        .header('cache-control', 'no-cache')
        .send(await readClientScript())
    })
  }

  fastify.addHook('preClose', async () => {
    await hub.closeAll(CloseCode.GOING_AWAY, 'server shutting down', SHUTDOWN_TIMEOUT_MS)
  })
  fastify.addHook('onClose', async () => {
    await adapter.close()
    if (ownStore) await store.close?.()
  })
}

/** Real-time chat over WebSockets: one `register` call adds the route and `app.chat`. */
export const fastifyChat = fp(plugin, { fastify: '5.x', name: 'fastify-chat' })
export default fastifyChat

export { FST_CHAT_CLOSED, FST_CHAT_INVALID_ARGUMENT, FST_CHAT_INVALID_MESSAGE, FST_CHAT_INVALID_OPTION, FST_CHAT_INVALID_ROOM } from './lib/errors.js'
export { defaults } from './lib/options.js'
export type { ChatClient, FastifyChatOptions, Identity, OutgoingMessage } from './lib/options.js'
export type { BroadcastOptions, Chat, HistoryOptions } from './lib/hub.js'
export type { Adapter, Deliver } from './lib/adapters/adapter.js'
export type { HistoryPage, HistoryStore, NewMessage } from './lib/stores/history-store.js'
export { MemoryStore } from './lib/stores/memory-store.js'
export type { MemoryStoreOptions } from './lib/stores/memory-store.js'
export type * from './lib/wire.js'
