import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'

// What the adapter asks of ioredis: the options its connections run with,
// loading it only when Redis is used, and what the server's INFO says.

/** One ioredis connection: to a single server, or to a Redis Cluster. */
export type RedisConnection = Redis | Cluster

/** Which pub/sub a channel goes over: sharded (`SPUBLISH`/`SSUBSCRIBE`, Redis 7) or plain. */
export type PubSub = 'sharded' | 'plain'

// Fail fast while Redis is away or hung: a send gets `unavailable` now rather
// than waiting in a queue, and no later than `commandTimeout`. A command cut
// off mid-flight fails rather than being sent again (it may have run), and
// the subscriber's channels are subscribed again by the broker, which then
// fills the gap. ioredis reconnects with backoff by itself.
export function options (commandTimeout: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    commandTimeout,
    lazyConnect: true
  }
}

// The same on a cluster, where a node's own connection must queue until it
// is connected (ioredis connects to nodes lazily) and the cluster as a whole
// refuses what it cannot route. A command cut off by a failing node is not
// sent again to its successor. Sharded subscribers are always on: one per
// shard that has channels, none otherwise, so PUBLISH mode costs nothing.
export function clusterOptions (commandTimeout: number): ClusterOptions {
  const { enableOfflineQueue, lazyConnect, ...perNode } = options(commandTimeout)
  return { enableOfflineQueue, lazyConnect, retryDelayOnFailover: 0, shardedSubscribers: true, redisOptions: perNode }
}

export function isCluster (redis: RedisConnection): redis is Cluster {
  return (redis as { isCluster?: unknown }).isCluster === true
}

/**
 * Which pub/sub a server has, from its `INFO server` text: sharded
 * (`SPUBLISH`/`SSUBSCRIBE`) from Redis 7 on, plain before, and plain when
 * the version cannot be read: every server of a chat asks the same Redis,
 * so they agree either way.
 */
export function pubSubOf (info: string): PubSub {
  const major = /^redis_version:(\d+)\./m.exec(info)?.[1]
  return major !== undefined && Number(major) >= 7 ? 'sharded' : 'plain'
}

export function commandOf (pubSub: PubSub): 'PUBLISH' | 'SPUBLISH' {
  return pubSub === 'sharded' ? 'SPUBLISH' : 'PUBLISH'
}

/** The Redis version in an `INFO server` text, for messages. */
export function versionIn (info: string): string {
  return /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'of unknown version'
}

/** `url` without its credentials, for messages and logs. */
export function redactUrl (url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.username === '' && parsed.password === '') return url
    parsed.username = ''
    parsed.password = ''
    return parsed.toString()
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//***@')
  }
}

export async function loadIoredis (): Promise<Pick<typeof import('ioredis'), 'Redis' | 'Cluster'>> {
  try {
    const { Redis, Cluster } = await import('ioredis')
    return { Redis, Cluster }
  } catch (err) {
    throw new FST_CHAT_ADAPTER_UNAVAILABLE(`ioredis is not installed (npm install ioredis): ${(err as Error).message}`)
  }
}
