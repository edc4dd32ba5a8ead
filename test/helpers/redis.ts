import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
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
