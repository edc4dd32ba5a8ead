import { createHash, timingSafeEqual } from 'node:crypto'
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import fastifyStatic from '@fastify/static'
import Fastify from 'fastify'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import { fastifyChat, redisAdapter, sqliteStore } from '../index.js'
import type { AuthorizeRequest, FastifyChatOptions, HistoryStore, Identity } from '../index.js'

/** Options of {@link buildServer}. */
export interface ExampleOptions {
  /** Fastify's logger. @default false */
  logger?: FastifyServerOptions['logger']
  /** Options passed to fastify-chat; a `chat.store` here wins over `store`. @default {} */
  chat?: FastifyChatOptions
  /** Where history lives. A store given here is the caller's to close. @default storeFromEnv(env) */
  store?: HistoryStore
  /**
   * Where the settings come from: `REDIS_URL` selects Redis, else `CHAT_DB`
   * (see storeFromEnv); `STAFF_TOKEN` is the secret that makes a page staff
   * (unset or empty: nobody is). @default process.env
   */
  env?: NodeJS.ProcessEnv
}

/** SQLite file of the example's history when `CHAT_DB` is not set. */
export const DEFAULT_CHAT_DB = './data/chat.db'

/** The example's `maxMessageLength` unless `chat` sets one; the page learns it from /settings.json. */
export const MAX_MESSAGE_LENGTH = 1000

/** What the page needs to know about the server, served at /settings.json. */
export interface PageSettings {
  /** Longest message, in characters (code points), that the server accepts. */
  maxMessageLength: number
}

/**
 * Connections the kernel queues before the server accepts them. When a
 * server restarts under a full room, every page reconnects within a second
 * or two: past Node's default of 511 the kernel drops their SYNs, and each
 * dropped one waits a second for its retransmit. Linux caps it at
 * net.core.somaxconn (4096 on recent kernels).
 */
export const LISTEN_BACKLOG = 4096

/** Rooms whose names start with this are open only to staff. */
export const STAFF_PREFIX = 'staff-'

/** What the example's `identify` tells the hooks about a client, as `client.data`. */
export interface StaffData {
  staff: boolean
}

/**
 * What a page sends as `?key=`: a random secret it keeps in localStorage,
 * so every tab of one browser is one user (see {@link keyedIdentify}).
 */
export const USER_KEY_PATTERN = /^[A-Za-z0-9_-]{22,128}$/

const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/**
 * The user id of a page's key: a hash, so an id that others see (in
 * presence, say) never tells the key that makes one that user.
 */
export function userIdOfKey (key: string): string {
  return `u-${digest(key).toString('base64url').slice(0, 24)}`
}

/**
 * Whether `given` is the staff token, in constant time: both sides are hashed
 * first, so the buffers timingSafeEqual compares always have the same length
 * and the comparison says nothing of the token's length either.
 */
function isStaffToken (given: unknown, token: string | null): boolean {
  if (token === null || typeof given !== 'string') return false
  return timingSafeEqual(digest(given), digest(token))
}

/** The staff token from the environment; `null` when unset or empty, so nobody is staff. */
function staffToken (env: NodeJS.ProcessEnv): string | null {
  const token = env.STAFF_TOKEN
  return token === undefined || token === '' ? null : token
}

/**
 * The example's staff check: a socket opened with `?staff=<token>` is staff.
 * It gives no id, so ids still come from the plugin's resume tokens (a
 * reload stays the same user), and no name, so `?name=` still picks it.
 */
export function staffIdentify (token: string | null): (request: FastifyRequest) => Identity {
  return (request) => {
    const data: StaffData = { staff: isStaffToken((request.query as { staff?: unknown }).staff, token) }
    return { data }
  }
}

/**
 * The example's `identify`: {@link staffIdentify}, plus an id for a socket
 * that brings a well-formed `?key=`. Read positions are kept per user only
 * for ids `identify` gives, so the key is what makes unread counts survive a
 * reload and follow the user from tab to tab. Whoever holds the key is that
 * user: a demo's stand-in for a real login. Without one (or with a
 * malformed one) the socket is a guest, its id from a resume token.
 */
export function keyedIdentify (token: string | null): (request: FastifyRequest) => Identity {
  const staff = staffIdentify(token)
  return (request) => {
    const identity = staff(request)
    const key = (request.query as { key?: unknown }).key
    return typeof key === 'string' && USER_KEY_PATTERN.test(key) ? { ...identity, id: userIdOfKey(key) } : identity
  }
}

/** The example's `authorize`: `staff-` rooms are joined and written to by staff only. */
export function staffRoomsOnly ({ room, client }: AuthorizeRequest): boolean {
  return !room.startsWith(STAFF_PREFIX) || (client.data as Partial<StaffData> | undefined)?.staff === true
}

const USER_ID = { type: 'string', minLength: 1, maxLength: 128 } as const
// The room's own rule (and a reason's 123-byte cap) is app.chat's to check: its error is answered with 400 too.
const ROOM = { type: 'string', minLength: 1, maxLength: 64 } as const
const REASON = { type: 'string', minLength: 1, maxLength: 123 } as const

/** Status codes of app.chat's errors, as the staff routes answer them. */
const CHAT_ERROR_STATUS: Readonly<Record<string, number>> = {
  FST_CHAT_INVALID_ARGUMENT: 400,
  FST_CHAT_INVALID_ROOM: 400,
  FST_CHAT_ADAPTER_UNAVAILABLE: 503,
  FST_CHAT_CLOSED: 503
}

function bearer (request: FastifyRequest): string | undefined {
  const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')
  return match?.[1]
}

/**
 * The moderation routes a staff page calls, under /staff: each checks the
 * token in `Authorization: Bearer <token>` before the body is even read.
 */
async function staffRoutes (app: FastifyInstance, { token }: { token: string | null }): Promise<void> {
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!isStaffToken(bearer(request), token)) {
      return await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'staff only' })
    }
  })

  app.setErrorHandler(async (err: FastifyError, request, reply) => {
    const given = err.statusCode ?? 500
    // A validation error, or a body Fastify could not parse, is the caller's fault as it stands.
    const status = CHAT_ERROR_STATUS[err.code] ?? (given >= 400 && given < 500 ? given : 500)
    if (status === 500) request.log.error({ err }, 'staff route failed')
    return await reply.code(status).send({ statusCode: status, code: err.code, message: status === 500 ? 'internal error' : err.message })
  })

  /** 204 for a staff token: the page shows its moderation buttons only then. */
  app.get('/check', async (_request, reply) => await reply.code(204).send())

  app.post<{ Body: { room: string, userId: string, reason?: string } }>('/remove', {
    schema: { body: { type: 'object', required: ['room', 'userId'], properties: { room: ROOM, userId: USER_ID, reason: REASON } } }
  }, async (request) => {
    const { room, userId, reason } = request.body
    return { removed: await app.chat.removeFromRoom(room, userId, reason === undefined ? {} : { reason }) }
  })

  app.post<{ Body: { userId: string, reason?: string } }>('/kick', {
    schema: { body: { type: 'object', required: ['userId'], properties: { userId: USER_ID, reason: REASON } } }
  }, async (request) => {
    const { userId, reason } = request.body
    return { disconnected: await app.chat.disconnect({ userId }, reason === undefined ? {} : { reason }) }
  })
}

/**
 * The history store the environment asks for: SQLite at `CHAT_DB` (default
 * ./data/chat.db; the store creates its directory; `:memory:` keeps nothing
 * on disk), so the chat survives a restart.
 */
export function storeFromEnv (env: NodeJS.ProcessEnv = process.env): HistoryStore {
  return sqliteStore({ path: env.CHAT_DB ?? DEFAULT_CHAT_DB })
}

// Run from source, public/ sits next to this file; compiled to
// dist/example/server.js, it is back in the source tree.
function publicDir (): string {
  const beside = fileURLToPath(new URL('./public', import.meta.url))
  return existsSync(beside) ? beside : fileURLToPath(new URL('../../example/public', import.meta.url))
}

/** The example app: the chat endpoint at /chat and the page at /, not listening yet. */
export async function buildServer (opts: ExampleOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    // Browsers keep idle HTTP connections open, and reconnecting pages open
    // new ones while the server drains; close them all so shutdown is prompt.
    forceCloseConnections: true
  })
  const env = opts.env ?? process.env
  const token = staffToken(env)
  // The one place the limit is decided: the plugin enforces it, the page shows it.
  const chat: FastifyChatOptions = {
    ...opts.chat,
    maxMessageLength: opts.chat?.maxMessageLength ?? MAX_MESSAGE_LENGTH,
    identify: opts.chat?.identify ?? keyedIdentify(token),
    authorize: opts.chat?.authorize ?? staffRoomsOnly
  }
  const given = opts.chat?.store ?? opts.store
  if (given === undefined && opts.chat?.adapter === undefined && env.REDIS_URL !== undefined && env.REDIS_URL !== '') {
    // Several instances share history, presence and fan-out through Redis.
    await app.register(fastifyChat, { ...chat, adapter: redisAdapter({ url: env.REDIS_URL }) })
  } else {
    const store = given ?? storeFromEnv(env)
    await app.register(fastifyChat, { ...chat, store })
    // The plugin leaves a store it is given open, so the example closes the one it made.
    if (given === undefined) app.addHook('onClose', async () => await store.close?.())
  }
  const settings: PageSettings = { maxMessageLength: chat.maxMessageLength as number }
  app.get('/settings.json', async () => settings)
  await app.register(staffRoutes, { prefix: '/staff', token })
  await app.register(fastifyStatic, { root: publicDir() })
  return app
}

/**
 * Fastify's request log entry, with the staff token and the user key of a
 * socket's URL (`/chat?staff=…&key=…`) blanked: logs reach more people than
 * staff do, and a key is all it takes to be its user.
 */
function loggedRequest (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: request.url.replace(/([?&](?:staff|key)=)[^&]*/g, '$1[redacted]'),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

async function main (): Promise<void> {
  const app = await buildServer({ logger: { serializers: { req: loggedRequest } } })
  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '127.0.0.1'

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // `once`: a second Ctrl-C falls through to Node's default and quits at once.
    process.once(signal, () => {
      app.log.info({ signal }, 'shutting down')
      // app.close() says goodbye to every chat socket with 1001 before the server stops.
      app.close().then(
        () => app.log.info('closed'),
        (err: unknown) => {
          app.log.error({ err }, 'shutdown failed')
          process.exitCode = 1
        }
      )
    })
  }

  const address = await app.listen({ port, host, backlog: LISTEN_BACKLOG })
  app.log.info(`chat example at ${address}/`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
