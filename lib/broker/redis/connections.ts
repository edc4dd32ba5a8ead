import type { FastifyBaseLogger } from 'fastify'
import type { Redis, RedisOptions } from 'ioredis'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'
import { channels } from '../../stats.js'
import { boundScripts } from './lua.js'
import { defineScripts } from './scripts.js'

/** Which connection an event is about, as the `fastify-chat:adapter` channel names it. */
export type Role = 'commands' | 'subscriber'

/** Where to reach Redis: a URL (both connections are ours) or the user's client (only the subscriber is ours). */
export type RedisTarget = { url: string, client?: undefined } | { client: Redis, url?: undefined }

/** What the connections call back into. */
export interface ConnectionHandlers {
  /** A payload on a subscribed channel. */
  message (payload: string): void
  /** A connection is ready (again): listen again and catch up. It counts as back once this settles. */
  ready (role: Role): Promise<void>
}

// Fail fast while Redis is away or hung: a send gets `unavailable` now rather
// than waiting in a queue, and no later than `commandTimeout`. A command cut
// off mid-flight fails rather than being sent again (it may have run), and
// the subscriber's channels are subscribed again by the broker, which then
// fills the gap. ioredis reconnects with backoff by itself.
function options (commandTimeout: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    commandTimeout,
    lazyConnect: true
  }
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

async function loadIoredis (): Promise<typeof import('ioredis').Redis> {
  try {
    return (await import('ioredis')).Redis
  } catch (err) {
    throw new FST_CHAT_ADAPTER_UNAVAILABLE(`ioredis is not installed (npm install ioredis): ${(err as Error).message}`)
  }
}

/**
 * The Redis adapter's two ioredis connections: one for commands (the user's
 * client, or one we open) and one subscriber (always ours). Opens them, logs
 * and reports (on `fastify-chat:adapter`) when one goes down and comes back,
 * and closes what it opened.
 */
export class RedisConnections {
  readonly #target: RedisTarget
  readonly #timeoutMs: number
  readonly #commandTimeoutMs: number
  #commands: Redis | null = null
  #subscriber: Redis | null = null
  #log: FastifyBaseLogger | null = null
  #lastError: Error | null = null
  #closed = false
  // Listeners on the user's client, taken off when we close: it outlives us.
  readonly #unwatch: Array<() => void> = []

  constructor (target: RedisTarget, connectTimeoutMs: number, commandTimeoutMs: number) {
    this.#target = target
    this.#timeoutMs = connectTimeoutMs
    this.#commandTimeoutMs = commandTimeoutMs
  }

  /** Where Redis is, for messages: the URL without credentials. */
  get where (): string {
    return this.#target.url === undefined ? 'the given client' : redactUrl(this.#target.url)
  }

  /** The commands connection; throws `FST_CHAT_ADAPTER_UNAVAILABLE` before `open()` and after `close()`. */
  get commands (): Redis {
    if (this.#commands === null || this.#closed) throw new FST_CHAT_ADAPTER_UNAVAILABLE('the Redis adapter is not started, or closed')
    return this.#commands
  }

  /** The subscriber connection; throws like {@link commands}. */
  get subscriber (): Redis {
    if (this.#subscriber === null || this.#closed) throw new FST_CHAT_ADAPTER_UNAVAILABLE('the Redis adapter is not started, or closed')
    return this.#subscriber
  }

  /**
   * The command every script publishes with, passed to it as an argument:
   * `SPUBLISH` where the server has sharded pub/sub (Redis 7), so channels
   * work on a cluster; `PUBLISH` on older servers.
   */
  get publishCommand (): 'PUBLISH' | 'SPUBLISH' {
    return 'PUBLISH'
  }

  /** Whether commands can be sent now. */
  get ready (): boolean {
    return !this.#closed && this.#commands?.status === 'ready'
  }

  /** Whether the subscriber listens now. */
  get listening (): boolean {
    return !this.#closed && this.#subscriber?.status === 'ready'
  }

  /** Connects both; throws `FST_CHAT_ADAPTER_UNAVAILABLE` (and closes) when Redis does not answer within the timeout. */
  async open (log: FastifyBaseLogger, handlers: ConnectionHandlers): Promise<void> {
    if (this.#closed) throw new FST_CHAT_ADAPTER_UNAVAILABLE('the Redis adapter is closed')
    this.#log = log
    const Redis = await loadIoredis()
    const { url, client } = this.#target
    const ours = options(this.#commandTimeoutMs)
    const commands = client ?? new Redis(url, ours)
    const subscriber = client === undefined ? new Redis(url, ours) : client.duplicate(ours)
    this.#commands = commands
    this.#subscriber = subscriber
    defineScripts(commands)
    // The user's client keeps its own options; its scripts are bounded here.
    if (client !== undefined && typeof client.options.commandTimeout !== 'number') boundScripts(commands, this.#commandTimeoutMs)
    this.#watch(commands, 'commands', client !== undefined, handlers.ready)
    this.#watch(subscriber, 'subscriber', false, handlers.ready)
    subscriber.on('message', (_channel: string, payload: string) => handlers.message(payload))
    try {
      await Promise.all([this.#connect(commands), this.#connect(subscriber)])
    } catch (err) {
      this.close()
      throw new FST_CHAT_ADAPTER_UNAVAILABLE(`cannot reach Redis at ${this.where}: ${(err as Error).message}`)
    }
  }

  /** Resolves once `redis` is ready; rejects, saying why, when it ends or the timeout passes. */
  async #connect (redis: Redis): Promise<void> {
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

  // Down means: it was ready, and is not any more. Connecting at start is
  // neither; `open()` reports that failure itself.
  #watch (redis: Redis, role: Role, theirs: boolean, onReady: (role: Role) => Promise<void>): void {
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
      onReady(role).then(() => {
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
