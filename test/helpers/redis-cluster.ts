import { execFile } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { within } from './chat.js'
import { eventually } from './eventually.js'
import { freePort, spawnRedis } from './redis.js'

const run = promisify(execFile)

// Each step is bounded: a node starts in well under a second, a three-node
// cluster agrees within a few.
const START_MS = 10_000
const CREATE_MS = 20_000
const AGREE_MS = 20_000

/** One redis-server in cluster mode on a free loopback port, nothing persisted. */
class ClusterNode {
  readonly port: number
  readonly #dir: string
  #process: ChildProcess | null = null

  constructor (port: number, dir: string) {
    this.port = port
    this.#dir = dir
  }

  async start (): Promise<void> {
    this.#process = await spawnRedis([
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.#dir,
      '--cluster-enabled', 'yes', '--cluster-config-file', join(this.#dir, `nodes-${this.port}.conf`),
      '--save', '', '--appendonly', 'no'
    ], `cluster node ${this.port}`, START_MS)
  }

  async stop (): Promise<void> {
    const child = this.#process
    this.#process = null
    if (child === null || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await within(exited, START_MS, `cluster node ${this.port} to stop`)
  }
}

/**
 * A real Redis Cluster of three masters and no replicas on free loopback
 * ports, in a temporary directory of its own: the 16384 slots split in
 * three by `redis-cli --cluster create`.
 */
export class RedisCluster {
  readonly #nodes: ClusterNode[]
  readonly #dir: string

  private constructor (nodes: ClusterNode[], dir: string) {
    this.#nodes = nodes
    this.#dir = dir
  }

  /** Starts three nodes, joins them into a cluster and waits until every node says `cluster_state:ok`. */
  static async start (): Promise<RedisCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'fastify-chat-cluster-'))
    const ports: number[] = []
    // Three distinct ports: the kernel may hand out a port just freed again.
    for (let tries = 0; ports.length < 3 && tries < 30; tries++) {
      const port = await freePort()
      // A node also listens on port + 10000, for the cluster bus.
      if (!ports.includes(port) && port + 10_000 <= 65_535) ports.push(port)
    }
    const cluster = new RedisCluster(ports.map((port) => new ClusterNode(port, dir)), dir)
    try {
      await Promise.all(cluster.#nodes.map(async (node) => await node.start()))
      await run('redis-cli', ['--cluster', 'create', ...cluster.nodes.map(({ host, port }) => `${host}:${port}`),
        '--cluster-replicas', '0', '--cluster-yes'], { timeout: CREATE_MS })
      await cluster.#agreed()
    } catch (err) {
      await cluster.remove()
      throw err
    }
    return cluster
  }

  /** Where the nodes are, as `redisAdapter({ cluster })` and `new Cluster(…)` take them. */
  get nodes (): Array<{ host: string, port: number }> {
    return this.#nodes.map(({ port }) => ({ host: '127.0.0.1', port }))
  }

  /** Each node's own client, for what only a node can tell (its slots, its sharded subscribers); the caller disconnects them. */
  clients (): Redis[] {
    return this.#nodes.map(({ port }) => new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 0 }))
  }

  async #agreed (): Promise<void> {
    const clients = this.clients()
    try {
      await eventually(async () => {
        const infos = await Promise.all(clients.map(async (client) => await client.cluster('INFO') as string))
        return infos.every((info) => /^cluster_state:ok\r?$/m.test(info))
      }, AGREE_MS, 'cluster_state:ok on every node')
    } finally {
      for (const client of clients) client.disconnect()
    }
  }

  /** Stops every node and removes their directory. Harmless twice. */
  async remove (): Promise<void> {
    await Promise.all(this.#nodes.map(async (node) => await node.stop()))
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

/** Starts a three-master cluster for a test and removes it when the test ends. */
export async function startRedisCluster (t: { teardown (fn: () => unknown): void }): Promise<RedisCluster> {
  const cluster = await RedisCluster.start()
  t.teardown(() => cluster.remove())
  return cluster
}
