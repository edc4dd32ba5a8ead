import type { FastifyBaseLogger } from 'fastify'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'
import { channels } from '../../stats.js'
import { clusterOptions, commandOf, isCluster, loadIoredis, options, pubSubOf, redactUrl, versionIn } from './ioredis.js'
import type { PubSub, RedisConnection } from './ioredis.js'
import { boundScripts, unavailableOnError } from './lua.js'
import { defineScripts } from './scripts.js'

/** Which connection an event is about, as the `fastify-chat:adapter` channel names it. */
export type Role = 'commands' | 'subscriber'

/** A node of a Redis Cluster to start from; the client finds the others. */
export interface ClusterStartNode { host: string, port: number }

/**
 * Where to reach Redis: a URL or a cluster's nodes (both connections are
 * ours), or the user's client, to one server or a cluster (only the
 * subscriber is ours).
 */
export type RedisTarget =
  | { url: string, client?: undefined, cluster?: undefined }
  | { client: RedisConnection, url?: undefined, cluster?: undefined }
  | { cluster: readonly ClusterStartNode[], url?: undefined, client?: undefined }

/** What the connections call back into. */
export interface ConnectionHandlers {
  /** A payload on a subscribed channel. */
  message (payload: string): void
  /** A connection is ready (again): listen again and catch up. It counts as back once this settles. */
  ready (role: Role): Promise<void>
}

/**
 * The Redis adapter's two ioredis connections: one for commands (the user's
 * client, or one we open) and one subscriber (always ours), to one server or
 * to a cluster. Opens them, finds out which pub/sub the server has, logs and
 * reports (on `fastify-chat:adapter`) when one goes down and comes back, and
 * closes what it opened.
 */
export class RedisConnections {
  readonly #target: RedisTarget
  readonly #timeoutMs: number
  readonly #commandTimeoutMs: number
  // What the user asked for; undefined: whatever the server has.
  readonly #wantedPubSub: PubSub | undefined
  #pubSub: PubSub = 'plain'
  // Settles once open() knows the pub/sub: nothing listens before that.
  #foundPubSub: () => void = () => {}
  readonly #pubSubKnown = new Promise<void>((resolve) => { this.#foundPubSub = resolve })
  #commands: RedisConnection | null = null
  #subscriber: RedisConnection | null = null
  #log: FastifyBaseLogger | null = null
  #lastError: Error | null = null
  #closed = false
  // Listeners on the user's client, taken off when we close: it outlives us.
  readonly #unwatch: Array<() => void> = []

  constructor (target: RedisTarget, connectTimeoutMs: number, commandTimeoutMs: number, pubSub?: PubSub) {
    this.#target = target
    this.#timeoutMs = connectTimeoutMs
    this.#commandTimeoutMs = commandTimeoutMs
    this.#wantedPubSub = pubSub
  }

  /** Where Redis is, for messages: the URL without credentials, or the cluster's start nodes. */
  get where (): string {
    const { url, cluster } = this.#target
    if (cluster !== undefined) return `the cluster at ${cluster.map(({ host, port }) => `${host}:${port}`).join(', ')}`
    return url === undefined ? 'the given client' : redactUrl(url)
  }

  /** The commands connection; throws `FST_CHAT_ADAPTER_UNAVAILABLE` before `open()` and after `close()`. */
  get commands (): RedisConnection {
    if (this.#commands === null || this.#closed) throw new FST_CHAT_ADAPTER_UNAVAILABLE('the Redis adapter is not started, or closed')
    return this.#commands
  }

  /** The subscriber connection; throws like {@link commands}. */
  get subscriber (): RedisConnection {
    if (this.#subscriber === null || this.#closed) throw new FST_CHAT_ADAPTER_UNAVAILABLE('the Redis adapter is not started, or closed')
    return this.#subscriber
  }

  /**
   * Which pub/sub the control channel uses: the rooms' on one server, where
   * the one subscriber connection must not mix both kinds (Redis counts
   * them apart, and ioredis leaves subscriber mode once an unsubscribe
   * answers 0, dropping the other kind's messages). Plain on a cluster (see
   * control-scripts.ts), where ioredis gives each kind connections of its own.
   */
  get controlPubSub (): PubSub {
    return this.#commands !== null && isCluster(this.#commands) ? 'plain' : this.#pubSub
  }

  /**
   * The command the room scripts publish with, passed to each as an
   * argument: `SPUBLISH` where the server has sharded pub/sub (Redis 7), so
   * a room's channel stays on its shard of a cluster; `PUBLISH` on older servers.
   */
  get publishCommand (): 'PUBLISH' | 'SPUBLISH' {
    return commandOf(this.#pubSub)
  }

  /** The command the control script publishes with. */
  get controlPublishCommand (): 'PUBLISH' | 'SPUBLISH' {
    return commandOf(this.controlPubSub)
  }

  /** Whether commands can be sent now. */
  get ready (): boolean {
    return !this.#closed && this.#commands?.status === 'ready'
  }

  /** Whether the subscriber listens now. */
  get listening (): boolean {
    return !this.#closed && this.#subscriber?.status === 'ready'
  }

  /** Listens to rooms' channels, as {@link publishCommand} publishes them. */
  async subscribeRooms (channels: readonly string[]): Promise<void> {
    await this.#subscribe(this.#pubSub, channels)
  }

  /** Stops listening to a room's channel. */
  async unsubscribeRoom (channel: string): Promise<void> {
    const subscriber = this.subscriber
    await unavailableOnError(this.#pubSub === 'plain' ? subscriber.unsubscribe(channel) : subscriber.sunsubscribe(channel))
  }

  /** Listens to the control channel, as {@link controlPublishCommand} publishes it. */
  async subscribeControl (channel: string): Promise<void> {
    await this.#subscribe(this.controlPubSub, [channel])
  }

  // Sharded, one SSUBSCRIBE per channel: on a cluster each may live on
  // another shard. Plain, one SUBSCRIBE for all.
  async #subscribe (pubSub: PubSub, channels: readonly string[]): Promise<void> {
    const subscriber = this.subscriber
    if (channels.length === 0) return
    if (pubSub === 'plain') {
      await unavailableOnError(subscriber.subscribe(...channels))
      return
    }
    await unavailableOnError(Promise.all(channels.map(async (channel) => await subscriber.ssubscribe(channel))))
  }

  /**
   * Connects both and finds out which pub/sub the server has; throws
   * `FST_CHAT_ADAPTER_UNAVAILABLE` (and closes) when Redis does not answer
   * within the timeout, or lacks the sharded pub/sub asked for.
   */
  async open (log: FastifyBaseLogger, handlers: ConnectionHandlers): Promise<void> {
    if (this.#closed) throw new FST_CHAT_ADAPTER_UNAVAILABLE('the Redis adapter is closed')
    this.#log = log
    const ioredis = await loadIoredis()
    const { url, client, cluster } = this.#target
    const commands = client ??
      (cluster !== undefined ? new ioredis.Cluster([...cluster], clusterOptions(this.#commandTimeoutMs)) : new ioredis.Redis(url, options(this.#commandTimeoutMs)))
    // A duplicate keeps the client's credentials and TLS, with our bounds over its options.
    const subscriber = isCluster(commands)
      ? commands.duplicate([], clusterOptions(this.#commandTimeoutMs))
      : commands.duplicate(options(this.#commandTimeoutMs))
    this.#commands = commands
    this.#subscriber = subscriber
    defineScripts(commands)
    // The user's client keeps its own options; its scripts are bounded here.
    const ownTimeout = isCluster(commands) ? commands.options.redisOptions?.commandTimeout : commands.options.commandTimeout
    if (client !== undefined && typeof ownTimeout !== 'number') boundScripts(commands, this.#commandTimeoutMs)
    this.#watch(commands, 'commands', client !== undefined, handlers.ready)
    this.#watch(subscriber, 'subscriber', false, handlers.ready)
    const deliver = (_channel: string, payload: string): void => handlers.message(payload)
    subscriber.on('message', deliver)
    subscriber.on('smessage', deliver)
    try {
      await Promise.all([this.#connect(commands).then(async () => await this.#connectMasters(commands)), this.#connect(subscriber)])
    } catch (err) {
      this.close()
      throw new FST_CHAT_ADAPTER_UNAVAILABLE(`cannot reach Redis at ${this.where}: ${(err as Error).message}`)
    }
    try {
      this.#pubSub = await this.#findPubSub(commands)
      this.#foundPubSub()
    } catch (err) {
      this.close()
      throw err
    }
  }

  // Asked once, at start: every server of a chat must publish and listen
  // alike, and a server that switched on a reconnect would stop hearing the
  // others until they switched too.
  async #findPubSub (commands: RedisConnection): Promise<PubSub> {
    if (this.#wantedPubSub === 'plain') return 'plain'
    const info = await unavailableOnError(commands.info('server'), this.#commandTimeoutMs)
    const found = pubSubOf(info)
    if (this.#wantedPubSub === 'sharded' && found === 'plain') {
      throw new FST_CHAT_ADAPTER_UNAVAILABLE(`Redis at ${this.where} is ${versionIn(info)}: sharded pub/sub needs Redis 7 or later`)
    }
    return found
  }

  /** Resolves once `redis` is ready; rejects, saying why, when it ends or the timeout passes. */
  async #connect (redis: RedisConnection): Promise<void> {
    if (redis.status === 'ready') return
    if (redis.status === 'end') throw new Error('the client is closed')
    if (redis.status === 'wait') redis.connect().catch(() => {})
    let timer: NodeJS.Timeout | undefined
    let ready: (() => void) | undefined
    let ended: (() => void) | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        const cause = (fallback: string): string => this.#lastError?.message ?? fallback
        timer = setTimeout(() => reject(new Error(`${cause('no answer')} (waited ${this.#timeoutMs} ms)`)), this.#timeoutMs)
        ready = resolve
        ended = () => reject(new Error(cause('the connection ended')))
        redis.once('ready', ready)
        redis.once('end', ended)
      })
    } finally {
      clearTimeout(timer)
      if (ready !== undefined) redis.off('ready', ready)
      if (ended !== undefined) redis.off('end', ended)
    }
  }

  // ioredis connects to a cluster's nodes on first use, and without an
  // offline queue it refuses commands for a node still connecting: the
  // masters are connected before the commands connection counts as ready.
  async #connectMasters (redis: RedisConnection): Promise<void> {
    if (!isCluster(redis)) return
    await Promise.all(redis.nodes('master').map(async (node) => await this.#connect(node)))
  }

  // Down means: it was ready, and is not any more. Connecting at start is
  // neither; `open()` reports that failure itself.
  #watch (redis: RedisConnection, role: Role, theirs: boolean, onReady: (role: Role) => Promise<void>): void {
    let state: 'connecting' | 'up' | 'down' = redis.status === 'ready' ? 'up' : 'connecting'
    // What the channel last said, so that two reconnects settling together say `up` once.
    let reported: 'up' | 'down' = 'up'
    const lost = (err?: Error): void => {
      if (err !== undefined) this.#lastError = err
      if (state !== 'up' || this.#closed) return
      state = 'down'
      reported = 'down'
      this.#log?.warn({ err, role }, 'fastify-chat: lost Redis; sends get "unavailable" until it is back')
      if (channels.adapter.hasSubscribers) channels.adapter.publish({ event: 'down', role, err })
    }
    const onError = (err: Error): void => lost(err)
    // A Redis that shuts down cleanly closes the connection without an error.
    const onClose = (): void => lost()
    const onReconnecting = (delay: number): void => {
      if (!this.#closed) this.#log?.info({ role, delay }, 'fastify-chat: reconnecting to Redis')
    }
    const onReadyEvent = (): void => {
      const back = state === 'down'
      state = 'up'
      if (back) this.#log?.info({ role }, 'fastify-chat: Redis is back')
      // The subscriber is back only once it listens again and caught up.
      const nodes = role === 'commands' ? this.#connectMasters(redis).catch(() => {}) : undefined
      Promise.all([this.#pubSubKnown, nodes]).then(async () => await onReady(role)).then(() => {
        if (!back || this.#closed || state !== 'up' || reported === 'up') return
        reported = 'up'
        if (channels.adapter.hasSubscribers) channels.adapter.publish({ event: 'up', role })
      }, (err: unknown) => {
        if (!this.#closed) this.#log?.warn({ err, role }, 'fastify-chat: could not resume after a Redis reconnect')
      })
    }
    redis.on('error', onError)
    redis.on('close', onClose)
    redis.on('reconnecting', onReconnecting)
    redis.on('ready', onReadyEvent)
    if (theirs) {
      this.#unwatch.push(() => {
        redis.off('error', onError)
        redis.off('close', onClose)
        redis.off('reconnecting', onReconnecting)
        redis.off('ready', onReadyEvent)
      })
    }
  }

  /** Disconnects what we opened; the user's client stays as it is. Harmless twice. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    for (const unwatch of this.#unwatch) unwatch()
    this.#subscriber?.disconnect()
    if (this.#target.client === undefined) this.#commands?.disconnect()
  }
}
