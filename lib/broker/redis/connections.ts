import type { FastifyBaseLogger } from 'fastify'
import type { Redis, RedisOptions } from 'ioredis'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'
import { channels } from '../../stats.js'
import { defineScripts } from './scripts.js'

/** Which connection an event is about, as the `fastify-chat:adapter` channel names it. */
export type Role = 'commands' | 'subscriber'

/** Where to reach Redis: a URL (both connections are ours) or the user's client (only the subscriber is ours). */
export type RedisTarget = { url: string, client?: undefined } | { client: Redis, url?: undefined }

/** What the subscriber connection calls back into. */
export interface SubscriberHandlers {
  /** A payload on a subscribed channel. */
  message (payload: string): void
  /** The subscriber is connected (again): listen again and catch up. It counts as back once this settles. */
  ready (): Promise<void>
}

// Fail fast while Redis is away: a send gets `unavailable` now rather than
// waiting in a queue; ioredis reconnects with backoff by itself.
const OPTIONS: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true }
const SUBSCRIBER_OPTIONS: RedisOptions = { ...OPTIONS, autoResubscribe: true }

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
  #commands: Redis | null = null
  #subscriber: Redis | null = null
  #log: FastifyBaseLogger | null = null
  #lastError: Error | null = null
  #closed = false
  // Listeners on the user's client, taken off when we close: it outlives us.
  readonly #unwatch: Array<() => void> = []

  constructor (target: RedisTarget, connectTimeoutMs: number) {
    this.#target = target
    this.#timeoutMs = connectTimeoutMs
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

  /** Whether commands can be sent now. */
  get ready (): boolean {
    return !this.#closed && this.#commands?.status === 'ready'
  }

  /** Whether the subscriber listens now. */
  get listening (): boolean {
    return !this.#closed && this.#subscriber?.status === 'ready'
  }

  /** Connects both; throws `FST_CHAT_ADAPTER_UNAVAILABLE` (and closes) when Redis does not answer within the timeout. */
  async open (log: FastifyBaseLogger, handlers: SubscriberHandlers): Promise<void> {
    if (this.#closed) throw new FST_CHAT_ADAPTER_UNAVAILABLE('the Redis adapter is closed')
    this.#log = log
    const Redis = await loadIoredis()
    const { url, client } = this.#target
    const commands = client ?? new Redis(url, OPTIONS)
    const subscriber = client === undefined ? new Redis(url, SUBSCRIBER_OPTIONS) : client.duplicate(SUBSCRIBER_OPTIONS)
    this.#commands = commands
    this.#subscriber = subscriber
    defineScripts(commands)
    this.#watch(commands, 'commands', client !== undefined)
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
  #watch (redis: Redis, role: Role, theirs: boolean, onReady?: () => Promise<void>): void {
    let state: 'connecting' | 'up' | 'down' = redis.status === 'ready' ? 'up' : 'connecting'
    const lost = (err?: Error): void => {
      if (err !== undefined) this.#lastError = err
      if (state !== 'up' || this.#closed) return
      state = 'down'
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
      const settled = onReady?.() ?? Promise.resolve()
      settled.then(() => {
        if (back && !this.#closed && channels.adapter.hasSubscribers) channels.adapter.publish({ event: 'up', role })
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
