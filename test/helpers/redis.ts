import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import diagnostics from 'node:diagnostics_channel'
import { once } from 'node:events'
import { createServer } from 'node:net'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { RedisAdapter } from '../../lib/broker/redis/redis-adapter.js'
import type { RedisAdapterOptions } from '../../lib/broker/redis/redis-adapter.js'
import { RecordingNode } from './broker-conformance.js'
import { within } from './chat.js'

/** A free loopback port, found by letting the kernel pick one. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** A real redis-server on a free loopback port, with no persistence: a restart starts empty. */
export class RedisServer {
  readonly port: number
  #process: ChildProcess | null = null

  constructor (port: number) {
    this.port = port
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start (): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'inherit']
    })
    this.#process = child
    let output = ''
    await within(new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)}: ${output}`)))
      child.once('error', reject)
    }), 10_000, 'redis-server to start')
  }

  async stop (): Promise<void> {
    const child = this.#process
    if (child === null || child.exitCode !== null) return
    this.#process = null
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await within(exited, 10_000, 'redis-server to stop')
  }
}

/** Starts redis-server for a test and stops it when the test ends. */
export async function startRedis (t: { teardown (fn: () => unknown): void }): Promise<RedisServer> {
  const server = new RedisServer(await freePort())
  await server.start()
  t.teardown(() => server.stop())
  return server
}

/** An ioredis client of the test's own on `server` (to flush, inspect, kill connections), disconnected when the test ends. */
export function adminClient (t: { teardown (fn: () => unknown): void }, server: RedisServer): Redis {
  const client = new Redis(server.url)
  t.teardown(() => client.disconnect())
  return client
}

/** A started RedisAdapter on `server` with a recording node, closed when the test ends. */
export async function redisNode (t: { teardown (fn: () => unknown): void }, server: RedisServer, opts: Partial<RedisAdapterOptions> = {}, historySize = 100): Promise<{ adapter: RedisAdapter, node: RecordingNode }> {
  const adapter = new RedisAdapter({ url: server.url, presenceTtlMs: 600, ...opts } as RedisAdapterOptions)
  const node = new RecordingNode()
  t.teardown(() => adapter.close())
  await adapter.start({ node, historySize, log: Fastify().log })
  return { adapter, node }
}

/** The next `fastify-chat:adapter` diagnostics event of `event` and `role`; start waiting before acting. */
export async function adapterEvent (event: 'down' | 'up', role: 'commands' | 'subscriber', ms = 15_000): Promise<{ event: string, role: string, err?: Error }> {
  let onEvent: ((message: unknown) => void) | undefined
  try {
    return await within(new Promise((resolve) => {
      onEvent = (message) => {
        const e = message as { event: string, role: string }
        if (e.event === event && e.role === role) resolve(e)
      }
      diagnostics.subscribe('fastify-chat:adapter', onEvent)
    }), ms, `an adapter "${event}" event for ${role}`)
  } finally {
    if (onEvent !== undefined) diagnostics.unsubscribe('fastify-chat:adapter', onEvent)
  }
}
