import { randomBytes } from 'node:crypto'
import { FST_CHAT_ADAPTER_UNAVAILABLE, FST_CHAT_INVALID_OPTION } from '../../errors.js'
import { integerOption, refuseUnknownKeys, shown } from '../../validate.js'
import type { Adapter, AdapterContext, AdapterNode } from '../adapter.js'
import type { Broker } from '../broker.js'
import type { Control } from '../control.js'
import type { Presence } from '../presence.js'
import { RedisConnections } from './connections.js'
import type { RedisTarget } from './connections.js'
import { redactUrl } from './ioredis.js'
import type { RedisConnection } from './ioredis.js'
import { parseEnvelope } from './envelope.js'
import { RedisKeys } from './keys.js'
import { RedisBroker } from './redis-broker.js'
import { RedisControl } from './redis-control.js'
import { RedisPresence } from './redis-presence.js'
import { unavailableOnError } from './lua.js'

/**
 * An ioredis client (`new Redis(…)` or `new Cluster(…)`), described by what
 * the adapter checks for, so that the package's types do not need ioredis
 * installed.
 */
export interface RedisClient {
  readonly status: string
  duplicate (options?: object): unknown
  defineCommand (name: string, definition: { lua: string, numberOfKeys?: number }): void
}

/**
 * A node of a Redis Cluster: the adapter finds the others from it. Its own
 * type (the same shape as connections' node), so the package's types do not
 * reach the module that imports ioredis's.
 */
export interface RedisClusterNode { host: string, port: number }

/**
 * Options of {@link redisAdapter}: a URL or a cluster's nodes (we connect
 * and close), or a client of yours, to one server or a cluster (you close it).
 */
export type RedisAdapterOptions = (
  | { url: string, client?: never, cluster?: never }
  | { client: RedisClient, url?: never, cluster?: never }
  | { cluster: readonly RedisClusterNode[], url?: never, client?: never }
) & {
  /** Prefix of every key and channel; no `{` or `}`, which would break the per-room hash tags. @default 'fastify-chat' */
  prefix?: string
  /** How soon, at the latest, a crashed server's users drop out of presence and are announced gone; each server refreshes its own every sixth of it. @default 15000 */
  presenceTtlMs?: number
  /**
   * How long `register` waits for Redis before failing with
   * `FST_CHAT_ADAPTER_UNAVAILABLE`. Keep it below the app's `pluginTimeout`
   * (Fastify's default: 10000), or Fastify's own timeout fires first.
   * @default 5000
   */
  connectTimeoutMs?: number
  /**
   * How long any Redis command may take before it fails with
   * `FST_CHAT_ADAPTER_UNAVAILABLE`: a send then gets `unavailable`, a join
   * its error, however long Redis hangs. Redis may still run it.
   * @default 2000
   */
  commandTimeoutMs?: number
  /**
   * Rooms' channels on sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`), which a
   * cluster serves from each room's own shard, or on plain `PUBLISH`. Every
   * server of a chat must use the same: pin it while servers started
   * before and after a Redis upgrade run side by side. `true` fails start
   * on Redis before 7.
   * @default true on Redis 7 or later, as Redis says when the adapter starts
   */
  shardedPubSub?: boolean
}

const defaults = Object.freeze({
  prefix: 'fastify-chat',
  presenceTtlMs: 15_000,
  connectTimeoutMs: 5000,
  commandTimeoutMs: 2000
})

const KNOWN: ReadonlySet<string> = new Set(['url', 'client', 'cluster', 'prefix', 'presenceTtlMs', 'connectTimeoutMs', 'commandTimeoutMs', 'shardedPubSub'])

// Enough for any real cluster's start list, few enough to show in a message.
const MAX_CLUSTER_NODES = 64

// Timers take at most a signed 32-bit number of milliseconds.
const MAX_TIMER_MS = 2 ** 31 - 1

function integer (name: string, value: unknown, fallback: number, min: number): number {
  return value === undefined ? fallback : integerOption(`redisAdapter.${name}`, value, min, MAX_TIMER_MS)
}

function redisUrl (value: unknown): string {
  let url: URL | undefined
  try {
    url = typeof value === 'string' ? new URL(value) : undefined
  } catch {}
  if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    const got = typeof value === 'string' ? shown(redactUrl(value)) : shown(value)
    throw new FST_CHAT_INVALID_OPTION('redisAdapter.url', `must be a redis:// or rediss:// URL with a host (for anything else, pass a client), got ${got}`)
  }
  return value as string
}

function redisClient (value: unknown): RedisConnection {
  const client = value as Partial<Record<keyof RedisClient, unknown>> | null
  if (typeof client !== 'object' || client === null || typeof client.duplicate !== 'function' || typeof client.defineCommand !== 'function') {
    throw new FST_CHAT_INVALID_OPTION('redisAdapter.client', `must be an ioredis client (new Redis(…) or new Cluster(…)), got ${shown(value)}`)
  }
  return client as unknown as RedisConnection
}

function clusterNodes (value: unknown): RedisClusterNode[] {
  const nodes = Array.isArray(value) ? value as unknown[] : []
  const valid = nodes.length > 0 && nodes.length <= MAX_CLUSTER_NODES && nodes.every((node) => {
    const { host, port } = (typeof node === 'object' && node !== null ? node : {}) as Record<string, unknown>
    return typeof host === 'string' && host !== '' && Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535
  })
  if (!valid) {
    throw new FST_CHAT_INVALID_OPTION('redisAdapter.cluster', `must be 1 to ${MAX_CLUSTER_NODES} nodes { host, port } (for anything else, pass a Cluster client), got ${shown(value)}`)
  }
  return (nodes as RedisClusterNode[]).map(({ host, port }) => ({ host, port }))
}

function shardedPubSub (value: unknown): 'sharded' | 'plain' | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'boolean') throw new FST_CHAT_INVALID_OPTION('redisAdapter.shardedPubSub', `must be a boolean, got ${shown(value)}`)
  return value ? 'sharded' : 'plain'
}

function prefix (value: unknown): string {
  if (value === undefined) return defaults.prefix
  if (typeof value !== 'string' || value === '' || /[{}]/.test(value)) {
    throw new FST_CHAT_INVALID_OPTION('redisAdapter.prefix', `must be a non-empty string without { or }, got ${shown(value)}`)
  }
  return value
}

function target (opts: Record<string, unknown>): RedisTarget {
  if ([opts.url, opts.client, opts.cluster].filter((given) => given !== undefined).length !== 1) {
    throw new FST_CHAT_INVALID_OPTION('redisAdapter', 'needs exactly one of url, client and cluster')
  }
  if (opts.url !== undefined) return { url: redisUrl(opts.url) }
  if (opts.client !== undefined) return { client: redisClient(opts.client) }
  return { cluster: clusterNodes(opts.cluster) }
}

/**
 * Fan-out, shared history and presence across servers through Redis, one
 * server or a cluster: the `adapter` option of every server of the same
 * chat, with moderation across them on a control channel. Holds two
 * connections: one for commands (yours, if you hand in a client) and one
 * subscriber.
 */
export class RedisAdapter implements Adapter {
  readonly broker: Broker
  readonly presence: Presence
  readonly control: Control
  readonly #broker: RedisBroker
  readonly #presence: RedisPresence
  readonly #control: RedisControl
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  readonly #commandTimeoutMs: number
  #state: 'new' | 'started' | 'closed' = 'new'

  /** Throws `FST_CHAT_INVALID_OPTION` for a bad option, naming it. */
  constructor (opts: RedisAdapterOptions) {
    if (typeof opts !== 'object' || opts === null) {
      throw new FST_CHAT_INVALID_OPTION('redisAdapter', `needs { url }, { client } or { cluster }, got ${shown(opts)}`)
    }
    refuseUnknownKeys(opts, KNOWN, 'redisAdapter')
    const raw = opts as Record<string, unknown>
    this.#commandTimeoutMs = integer('commandTimeoutMs', raw.commandTimeoutMs, defaults.commandTimeoutMs, 1)
    this.#connections = new RedisConnections(target(raw),
      integer('connectTimeoutMs', raw.connectTimeoutMs, defaults.connectTimeoutMs, 1), this.#commandTimeoutMs, shardedPubSub(raw.shardedPubSub))
    this.#keys = new RedisKeys(prefix(raw.prefix))
    this.broker = this.#broker = new RedisBroker(this.#connections, this.#keys)
    this.presence = this.#presence = new RedisPresence(this.#connections, this.#keys,
      integer('presenceTtlMs', raw.presenceTtlMs, defaults.presenceTtlMs, 30))
    this.control = this.#control = new RedisControl(this.#connections, this.#keys, this.#commandTimeoutMs)
  }

  async start (context: AdapterContext): Promise<void> {
    if (this.#state !== 'new') throw new FST_CHAT_ADAPTER_UNAVAILABLE(`the Redis adapter is ${this.#state}; give each app its own`)
    this.#state = 'started'
    const { node, log } = context
    this.#broker.start(node, context.historySize, log)
    this.#control.start(node, log)
    try {
      await this.#connections.open(log, {
        message: (payload) => this.#route(node, payload),
        // The subscriber counts as back once it listens to the control channel again, too.
        ready: async (role) => {
          await Promise.all([role === 'subscriber' ? this.#control.listen() : undefined, this.#broker.resume(role)])
        }
      })
      await this.#control.subscribed()
    } catch (err) {
      await this.close()
      throw err
    }
    this.#presence.start(log)
  }

  #route (node: AdapterNode, payload: string): void {
    const envelope = parseEnvelope(payload)
    if (envelope?.t === 'm') this.#broker.receive(envelope.m, envelope.e, envelope.x)
    else if (envelope?.t === 'p' && this.#presence.accepts(envelope)) node.presence(envelope.e)
    else if (envelope?.t === 'c') this.#control.receive(envelope)
    else if (envelope?.t === 's') this.#broker.receiveSignal(envelope.s, envelope.x)
    else if (envelope?.t === 'r') this.#broker.receiveRead(envelope.r, envelope.u, envelope.o, envelope.s, envelope.x)
  }

  /** One secret for every server, made by whichever asks first. */
  async secret (): Promise<string> {
    const redis = this.#connections.commands
    await unavailableOnError(redis.set(this.#keys.secret, randomBytes(32).toString('base64url'), 'NX'), this.#commandTimeoutMs)
    return await unavailableOnError(redis.get(this.#keys.secret), this.#commandTimeoutMs) as string
  }

  /** Takes this server's users out of presence, then disconnects what it opened. Harmless twice. */
  async close (): Promise<void> {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    await this.#presence.close()
    this.#broker.close()
    this.#control.close()
    this.#connections.close()
  }
}

/** Fan-out, shared history and presence across servers through Redis or a Redis Cluster (ioredis). */
export function redisAdapter (opts: RedisAdapterOptions): RedisAdapter {
  return new RedisAdapter(opts)
}
