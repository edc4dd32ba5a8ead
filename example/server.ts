import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import fastifyStatic from '@fastify/static'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { fastifyChat } from '../index.js'
import type { FastifyChatOptions } from '../index.js'

/** Options of {@link buildServer}. */
export interface ExampleOptions {
  /** Fastify's logger. @default false */
  logger?: FastifyServerOptions['logger']
  /** Options passed to fastify-chat. @default {} */
  chat?: FastifyChatOptions
}

// Run from source, public/ sits next to this file; compiled to
// dist/example/server.js, it is back in the source tree.
function publicDir (): string {
  const beside = fileURLToPath(new URL('./public/', import.meta.url))
  return existsSync(beside) ? beside : fileURLToPath(new URL('../../example/public/', import.meta.url))
}

/** The example app: the chat endpoint at /chat and the page at /, not listening yet. */
export async function buildServer (opts: ExampleOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    // Browsers keep idle HTTP connections open, and reconnecting pages open
    // new ones while the server drains; close them all so shutdown is prompt.
    forceCloseConnections: true
  })
  await app.register(fastifyChat, opts.chat ?? {})
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
