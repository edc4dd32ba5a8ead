import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import diagnostics from 'node:diagnostics_channel'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { RedisAdapter } from '../../lib/broker/redis/redis-adapter.js'
import type { RedisAdapterOptions } from '../../lib/broker/redis/redis-adapter.js'
import { RecordingNode } from './broker-conformance.js'
import { within } from './chat.js'
import { eventually } from './eventually.js'

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

/** How a {@link RedisServer} runs. */
export interface RedisServerOptions {
  /** Append-only file, fsynced on every write, in the server's own directory: a restart (even after SIGKILL) keeps the data. */
  aof?: boolean
  /** Allow the `DEBUG` command (`DEBUG SLEEP` hangs the server). */
  debug?: boolean
}

/**
 * A real redis-server on a free loopback port, in a temporary directory of
 * its own. Without `aof` nothing is persisted: a restart starts empty.
 */
export class RedisServer {
  readonly port: number
  readonly dir: string
  readonly #options: RedisServerOptions
  #process: ChildProcess | null = null

  constructor (port: number, options: RedisServerOptions = {}) {
    this.port = port
    this.#options = options
    this.dir = mkdtempSync(join(tmpdir(), 'fastify-chat-redis-'))
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Whether the process is running. */
  get running (): boolean {
    return this.#process !== null && this.#process.exitCode === null && this.#process.signalCode === null
  }

  #args (): string[] {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '']
    args.push(...(this.#options.aof === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']))
    if (this.#options.debug === true) args.push('--enable-debug-command', 'yes')
    return args
  }

  /** Starts the server (again, after `stop` or `kill`, on the same port) and waits until it accepts connections. */
  async start (): Promise<void> {
    if (this.running) throw new Error('redis-server is running already')
    this.#process = await spawnRedis(this.#args(), 'redis-server')
  }

  /** Shuts the server down with SIGTERM (without `aof`, its data is gone). */
  async stop (): Promise<void> {
    await this.#end('SIGTERM')
  }

  /** Kills the server with SIGKILL: no shutdown, no last write. */
  async kill (): Promise<void> {
    await this.#end('SIGKILL')
  }

  /** Stops (or kills, with `kill: true`) the server and starts it again on the same port. */
  async restart ({ kill = false }: { kill?: boolean } = {}): Promise<void> {
    await (kill ? this.kill() : this.stop())
    await this.start()
  }

  async #end (signal: NodeJS.Signals): Promise<void> {
    const child = this.#process
    if (child === null || child.exitCode !== null || child.signalCode !== null) return
    this.#process = null
    const exited = once(child, 'exit')
    child.kill(signal)
    await within(exited, 10_000, 'redis-server to stop')
  }

  /** Stops the server and removes its directory. */
  async remove (): Promise<void> {
    await this.stop()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/**
 * Spawns redis-server with `args` and resolves with its process once it
 * accepts connections; `what` names it in errors. A server that does not
 * start in time is killed, so no caller is left holding an orphan.
 */
export async function spawnRedis (args: string[], what: string, ms = 10_000): Promise<ChildProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let output: string | null = ''
  try {
    await within(new Promise<void>((resolve, reject) => {
      // The pipe is read to its end so the server never blocks on its log; only the start is kept.
      child.stdout?.on('data', (chunk: Buffer) => {
        if (output === null) return
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`${what} exited with ${String(code)}: ${output ?? ''}`)))
      child.once('error', reject)
    }), ms, `${what} to start`)
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  } finally {
    output = null
  }
  return child
}

/** Starts redis-server for a test and stops it when the test ends. */
export async function startRedis (t: { teardown (fn: () => unknown): void }, options: RedisServerOptions = {}): Promise<RedisServer> {
  const server = new RedisServer(await freePort(), options)
  t.teardown(() => server.remove())
  await server.start()
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

/** Resolves once `count` `up` events of the adapters' connections were reported; start waiting before acting. */
export async function adapterUps (count: number, ms = 15_000): Promise<void> {
  let onEvent: ((message: unknown) => void) | undefined
  try {
    await within(new Promise<void>((resolve) => {
      let ups = 0
      onEvent = (message) => { if ((message as { event: string }).event === 'up' && ++ups === count) resolve() }
      diagnostics.subscribe('fastify-chat:adapter', onEvent)
    }), ms, `${count} adapter "up" events`)
  } finally {
    if (onEvent !== undefined) diagnostics.unsubscribe('fastify-chat:adapter', onEvent)
  }
}

/**
 * Starts `redis` again after a kill and resolves once each of `servers`
 * adapters is back and subscribed to the control channel.
 */
export async function restartForControl (t: Test, redis: RedisServer, servers: number): Promise<void> {
  // Each server has a command and a subscriber connection that report back.
  const back = adapterUps(2 * servers)
  await redis.start()
  await back
  // The adapters report "up" without waiting for the control channel's SUBSCRIBE (see redis-adapter.ts, the ready handler): wait for every one.
  const admin = adminClient(t, redis)
  await eventually(async () => {
    const [, count] = await admin.pubsub('SHARDNUMSUB', 'fastify-chat:control') as [string, number]
    return count === servers
  }, 5000, `${servers} servers to subscribe the control channel again`)
}

/**
 * Calls each of `calls` at once; each must reject with
 * FST_CHAT_ADAPTER_UNAVAILABLE. Resolves with the ms it took until the last did.
 */
export async function allUnavailable (t: Test, calls: Record<string, () => Promise<unknown>>): Promise<number> {
  const started = performance.now()
  const running = Object.entries(calls).map(([name, call]) => [name, call()] as const)
  for (const [name, call] of running) await t.rejects(within(call, 3000, name), { code: 'FST_CHAT_ADAPTER_UNAVAILABLE' }, `${name} rejects`)
  return performance.now() - started
}
