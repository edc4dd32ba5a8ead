import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import fastifyStatic from '@fastify/static'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { fastifyChat, redisAdapter, sqliteStore } from '../index.js'
import type { FastifyChatOptions, HistoryStore } from '../index.js'

/** Options of {@link buildServer}. */
export interface ExampleOptions {
  /** Fastify's logger. @default false */
  logger?: FastifyServerOptions['logger']
  /** Options passed to fastify-chat; a `chat.store` here wins over `store`. @default {} */
  chat?: FastifyChatOptions
  /** Where history lives. A store given here is the caller's to close. @default storeFromEnv(env) */
  store?: HistoryStore
  /** Where the settings come from: `REDIS_URL` selects Redis, else `CHAT_DB` (see storeFromEnv). @default process.env */
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
  // The one place the limit is decided: the plugin enforces it, the page shows it.
  const chat: FastifyChatOptions = { ...opts.chat, maxMessageLength: opts.chat?.maxMessageLength ?? MAX_MESSAGE_LENGTH }
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
  await app.register(fastifyStatic, { root: publicDir() })
  return app
}

async function main (): Promise<void> {
  const app = await buildServer({ logger: true })
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

  const address = await app.listen({ port, host })
  app.log.info(`chat example at ${address}/`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
