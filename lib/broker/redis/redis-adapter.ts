import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis, RedisOptions } from 'ioredis'
import { randomId } from '../../random.js'
import { FST_CHAT_ADAPTER_UNAVAILABLE, FST_CHAT_INVALID_OPTION } from '../../errors.js'
import type { HistoryPage, HistoryStore, NewMessage } from '../../stores/history-store.js'
import { channels } from '../../stats.js'
import type { ChatMessage, User } from '../../protocol/wire.js'
import type { Adapter, AdapterContext, AdapterNode, PresenceEvent, PublishResult } from '../adapter.js'

/**
 * An ioredis client (`new Redis(…)`), described by what the adapter checks
 * for, so that the package's types do not need ioredis installed.
 */
export interface RedisClient {
  readonly status: string
  duplicate (...args: any[]): unknown
  defineCommand (name: string, definition: { lua: string, numberOfKeys?: number }): void
}

/** Options of {@link redisAdapter}: a URL (we connect and close), or a client of yours (you close it). */
export type RedisAdapterOptions = ({ url: string, client?: never } | { client: RedisClient, url?: never }) & {
  /** Prefix of every key and channel. @default 'fastify-chat' */
  prefix?: string
  /** How long a node's presence entries live without a refresh: a crashed node's users are gone within it. @default 15000 */
  presenceTtlMs?: number
  /** How long `register` waits for Redis. @default 10000 */
  connectTimeoutMs?: number
}

// Every write to a room is one script: epoch check, offset, stream entry,
// cid memory and PUBLISH happen together, so no node can see a message the
// history lacks, or the reverse. A missing epoch means the room's history
// was lost (a flush, an eviction): a new epoch is set and the rest reset.
const EPOCH = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
end
`
const PUBLISH = EPOCH + `
if ARGV[3] ~= '' then
  local seen = redis.call('ZSCORE', KEYS[4], ARGV[3])
  if seen then
    local entry = redis.call('XRANGE', KEYS[3], seen .. '-1', seen .. '-1')
    if entry[1] then return {1, entry[1][2][2]} end
  end
end
local seq = redis.call('INCR', KEYS[2])
local stored = '{"offset":' .. seq .. ',' .. string.sub(ARGV[2], 2)
local size = tonumber(ARGV[4])
if size > 0 then redis.call('XADD', KEYS[3], 'MAXLEN', size, seq .. '-1', 'm', stored) end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[4], seq, ARGV[3])
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -257)
end
redis.call('PUBLISH', ARGV[5], '{"t":"m","e":' .. cjson.encode(epoch) .. ',"x":' .. ARGV[6] .. ',"m":' .. stored .. '}')
return {0, stored}
`
const RECENT = EPOCH + `
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local out = {epoch, seq}
local n = tonumber(ARGV[2])
if n > 0 then
  local entries = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', n)
  for i = #entries, 1, -1 do out[#out + 1] = entries[i][2][2] end
end
return out
`
// Returns {epoch, seq, 1, ...messages} or {epoch, seq, 0} when the stream no
// longer holds every message after the offset (or the offset is ahead).
const SINCE = EPOCH + `
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local after = tonumber(ARGV[2])
if after > seq then return {epoch, seq, 0} end
local entries = redis.call('XRANGE', KEYS[3], '(' .. after .. '-1', '+')
if #entries ~= seq - after then return {epoch, seq, 0} end
local out = {epoch, seq, 1}
for i = 1, #entries do out[#out + 1] = entries[i][2][2] end
return out
`
// Presence: a sorted set per room of [node, user id, name] members scored by
// expiry time. A user is present while any live member has their id.
const OTHERS = `
local function others(key, now, id, except)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf')) do
    if m ~= except and cjson.decode(m)[2] == id then return true end
  end
  return false
end
`
const JOIN = OTHERS + `
local present = others(KEYS[1], ARGV[3], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if not present then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return present and 0 or 1
`
const LEAVE = OTHERS + `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if others(KEYS[1], ARGV[2], ARGV[3], ARGV[1]) then return 0 end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`
const RENAME = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`
// Removes expired members (a crashed node's) and announces each user that is
// gone everywhere; ZREM makes exactly one node announce it.
const SWEEP = OTHERS + `
local gone = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  if redis.call('ZREM', KEYS[1], m) == 1 then
    local entry = cjson.decode(m)
    if not others(KEYS[1], ARGV[1], entry[2], m) then
      redis.call('PUBLISH', ARGV[2], cjson.encode({t = 'p', e = {room = ARGV[3], event = 'leave', user = {id = entry[2], name = entry[3]}}}))
      gone = gone + 1
    end
  end
end
return gone
`

type Script = (...args: Array<string | number>) => Promise<unknown>
interface ScriptedRedis extends Redis {
  chatPublish: Script
  chatRecent: Script
  chatSince: Script
  chatJoin: Script
  chatLeave: Script
  chatRename: Script
  chatSweep: Script
}

interface Envelope {
  t: 'm' | 'p'
  e?: unknown
  x?: string | null
  m?: ChatMessage
}

function newEpoch (): string {
  return randomId().slice(0, 8)
}

/**
 * Fan-out, shared history and presence across servers through Redis: the
 * `adapter` option of every instance that serves the same chat.
 */
export class RedisAdapter implements Adapter {
  readonly store: HistoryStore
  #opts: RedisAdapterOptions
  #prefix: string
  #ttl: number
  #node: AdapterNode | null = null
  #log: FastifyBaseLogger | null = null
  #historySize = 100
  #redis: ScriptedRedis | null = null
  #sub: Redis | null = null
  #ownClient: boolean
  readonly #id = randomId()
  // Rooms this node listens to, with the last offset delivered here: pub/sub
  // may drop messages while the subscriber reconnects, and this is what lets
  // the node fill the gap from the stream and never deliver twice.
  #rooms = new Map<string, { epoch: string | null, offset: number }>()
  // This node's presence members per room: [room, user id] -> member string.
  #present = new Map<string, string>()
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor (opts: RedisAdapterOptions) {
    if (typeof opts !== 'object' || opts === null) throw new FST_CHAT_INVALID_OPTION('adapter', 'redisAdapter() needs { url } or { client }')
    if ((opts.url === undefined) === (opts.client === undefined)) {
      throw new FST_CHAT_INVALID_OPTION('adapter', 'redisAdapter() needs exactly one of { url } and { client }')
    }
    if (opts.url !== undefined && typeof opts.url !== 'string') throw new FST_CHAT_INVALID_OPTION('adapter', 'url must be a string')
    this.#opts = opts
    this.#prefix = opts.prefix ?? 'fastify-chat'
    this.#ttl = opts.presenceTtlMs ?? 15_000
    if (!Number.isInteger(this.#ttl) || this.#ttl < 30) throw new FST_CHAT_INVALID_OPTION('adapter', 'presenceTtlMs must be an integer >= 30')
    this.#ownClient = opts.client === undefined
    this.store = {
      append: async () => { throw new Error('the Redis adapter stores through publish()') },
      recent: async (room, limit) => await this.#recent(room, limit),
      since: async (room, offset) => await this.#since(room, offset),
      epoch: async (room) => (await this.#recent(room, 0)).epoch
    }
  }

  #key (room: string, what: string): string {
    return `${this.#prefix}:{${room}}:${what}`
  }

  #channel (room: string): string {
    return this.#key(room, 'ch')
  }

  #roomKeys (room: string): string[] {
    return [this.#key(room, 'epoch'), this.#key(room, 'seq'), this.#key(room, 'log'), this.#key(room, 'cids')]
  }

  get #client (): ScriptedRedis {
    if (this.#redis === null || this.#closed) throw new FST_CHAT_ADAPTER_UNAVAILABLE('the Redis adapter is closed')
    return this.#redis
  }

  async start (node: AdapterNode, context: AdapterContext): Promise<void> {
    this.#node = node
    this.#log = context.log
    this.#historySize = context.historySize
    let Redis: typeof import('ioredis').Redis
    try {
      ({ Redis } = await import('ioredis'))
    } catch (err) {
      throw new FST_CHAT_ADAPTER_UNAVAILABLE(`ioredis is not installed (npm install ioredis): ${(err as Error).message}`)
    }
    // Fail fast while Redis is away: a send gets `unavailable` now rather than
    // waiting in a queue; ioredis reconnects with backoff by itself.
    const options: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true }
    const client = (this.#opts.client as Redis | undefined) ?? new Redis(this.#opts.url as string, options)
    const sub = this.#opts.client !== undefined ? client.duplicate({ ...options, autoResubscribe: true }) : new Redis(this.#opts.url as string, { ...options, autoResubscribe: true })
    this.#redis = client as ScriptedRedis
    this.#sub = sub
    for (const [name, lua, keys] of [
      ['chatPublish', PUBLISH, 4], ['chatRecent', RECENT, 4], ['chatSince', SINCE, 4],
      ['chatJoin', JOIN, 1], ['chatLeave', LEAVE, 1], ['chatRename', RENAME, 1], ['chatSweep', SWEEP, 1]
    ] as const) {
      client.defineCommand(name, { numberOfKeys: keys, lua })
    }
    this.#watch(client, 'commands')
    this.#watch(sub, 'subscriber')
    sub.on('message', (_channel: string, payload: string) => this.#onMessage(payload))
    sub.on('ready', () => {
      this.#resubscribe().then(() => {
        if (channels.adapter.hasSubscribers) channels.adapter.publish({ event: 'up', role: 'subscriber' })
      }, () => {})
    })
    const timeout = this.#opts.connectTimeoutMs ?? 10_000
    try {
      await Promise.all([this.#connect(client, timeout), this.#connect(sub, timeout)])
    } catch (err) {
      await this.close()
      throw new FST_CHAT_ADAPTER_UNAVAILABLE(`cannot reach Redis at ${this.#opts.url ?? 'the given client'}: ${(err as Error).message}`)
    }
    this.#timer = setInterval(() => { this.#refresh() }, Math.max(10, Math.floor(this.#ttl / 3)))
    this.#timer.unref()
  }

  async #connect (redis: Redis, timeoutMs: number): Promise<void> {
    if (redis.status === 'ready') return
    if (redis.status === 'wait') redis.connect().catch(() => {})
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
      redis.once('ready', resolve)
    }).finally(() => clearTimeout(timer))
  }

  #watch (redis: Redis, role: string): void {
    let down = false
    const lost = (err?: Error): void => {
      if (down || this.#closed) return
      down = true
      this.#log?.warn({ err, role }, 'fastify-chat: lost Redis; sends get "unavailable" until it is back')
      if (channels.adapter.hasSubscribers) channels.adapter.publish({ event: 'down', role, err })
    }
    redis.on('error', lost)
    // A Redis that shuts down cleanly closes the connection without an error.
    redis.on('close', () => lost())
    redis.on('reconnecting', (delay: number) => this.#log?.info({ role, delay }, 'fastify-chat: reconnecting to Redis'))
    redis.on('ready', () => {
      if (!down) return
      down = false
      this.#log?.info({ role }, 'fastify-chat: Redis is back')
      // The subscriber reports up only once it listens again and has filled the gap.
      if (role !== 'subscriber' && channels.adapter.hasSubscribers) channels.adapter.publish({ event: 'up', role })
    })
  }

  /** One secret for every node, made by whichever node asks first. */
  async secret (): Promise<string> {
    const key = `${this.#prefix}:secret`
    await this.#client.set(key, randomBytes(32).toString('base64url'), 'NX')
    return await this.#client.get(key) as string
  }

  async publish (message: NewMessage, exclude: string | null): Promise<PublishResult> {
    // Without a subscriber this node would store a message it cannot deliver.
    if (this.#sub?.status !== 'ready') throw new FST_CHAT_ADAPTER_UNAVAILABLE('not subscribed to Redis')
    const { room, ...rest } = message
    const json = JSON.stringify({ room, ...rest })
    const [dup, stored] = await this.#client.chatPublish(
      ...this.#roomKeys(room), newEpoch(), json, message.cid ?? '', this.#historySize, this.#channel(room),
      JSON.stringify(exclude)
    ) as [number, string]
    return { message: JSON.parse(stored) as ChatMessage, duplicate: dup === 1 }
  }

  async #recent (room: string, limit: number): Promise<HistoryPage> {
    const [epoch, offset, ...messages] = await this.#client.chatRecent(...this.#roomKeys(room), newEpoch(), limit) as [string, number, ...string[]]
    return { epoch, offset, messages: messages.map((m) => JSON.parse(m) as ChatMessage) }
  }

  async #since (room: string, after: number): Promise<HistoryPage | null> {
    const [epoch, offset, complete, ...messages] = await this.#client.chatSince(...this.#roomKeys(room), newEpoch(), after) as [string, number, number, ...string[]]
    if (complete !== 1) return null
    return { epoch, offset, messages: messages.map((m) => JSON.parse(m) as ChatMessage) }
  }

  async subscribe (room: string): Promise<void> {
    this.#rooms.set(room, { epoch: null, offset: 0 })
    try {
      await (this.#sub as Redis).subscribe(this.#channel(room))
    } catch (err) {
      this.#rooms.delete(room)
      throw err
    }
  }

  async unsubscribe (room: string): Promise<void> {
    this.#rooms.delete(room)
    if (this.#sub?.status === 'ready') await this.#sub.unsubscribe(this.#channel(room))
  }

  #onMessage (payload: string): void {
    let envelope: Envelope
    try {
      envelope = JSON.parse(payload) as Envelope
    } catch {
      return
    }
    if (envelope.t === 'p') {
      this.#node?.presence(envelope.e as PresenceEvent)
      return
    }
    this.#deliver(envelope.m as ChatMessage, envelope.e as string, envelope.x ?? null)
  }

  /** Delivers once: a message at or below the last offset seen here (same epoch) was delivered already. */
  #deliver (message: ChatMessage, epoch: string, exclude: string | null): void {
    const seen = this.#rooms.get(message.room)
    if (seen === undefined) return
    if (seen.epoch === epoch && message.offset <= seen.offset) return
    seen.epoch = epoch
    seen.offset = message.offset
    this.#node?.deliver(message, exclude)
  }

  /**
   * After the subscriber (re)connects: listen to every room again, then
   * deliver what pub/sub dropped meanwhile from the stream (all of a new
   * epoch's messages if Redis lost the old one); #deliver keeps it single.
   */
  async #resubscribe (): Promise<void> {
    await Promise.all([...this.#rooms].map(async ([room, seen]) => {
      try {
        await this.#sub?.subscribe(this.#channel(room))
        if (seen.epoch === null) return
        const page = await this.#recent(room, this.#historySize)
        for (const message of page.messages) {
          if (page.epoch !== seen.epoch || message.offset > seen.offset) this.#deliver(message, page.epoch, null)
        }
      } catch (err) {
        this.#log?.warn({ err, room }, 'fastify-chat: could not resume a room after a Redis reconnect')
      }
    }))
  }

  #member (user: User): string {
    return JSON.stringify([this.#id, user.id, user.name])
  }

  #presenceEvent (event: PresenceEvent): string {
    return JSON.stringify({ t: 'p', e: event })
  }

  async join (room: string, user: User): Promise<void> {
    const member = this.#member(user)
    const now = Date.now()
    await this.#client.chatJoin(this.#key(room, 'presence'), member, now + this.#ttl, now, user.id, this.#channel(room),
      this.#presenceEvent({ room, event: 'join', user }))
    this.#present.set(JSON.stringify([room, user.id]), member)
  }

  async leave (room: string, user: User): Promise<void> {
    const key = JSON.stringify([room, user.id])
    const member = this.#present.get(key) ?? this.#member(user)
    this.#present.delete(key)
    await this.#client.chatLeave(this.#key(room, 'presence'), member, Date.now(), user.id, this.#channel(room),
      this.#presenceEvent({ room, event: 'leave', user }))
  }

  async rename (room: string, user: User, previous: string): Promise<void> {
    const key = JSON.stringify([room, user.id])
    const old = this.#present.get(key) ?? this.#member({ id: user.id, name: previous })
    const member = this.#member(user)
    this.#present.set(key, member)
    await this.#client.chatRename(this.#key(room, 'presence'), old, Date.now() + this.#ttl, member, this.#channel(room),
      this.#presenceEvent({ room, event: 'rename', user, previous }))
  }

  async presence (room: string): Promise<User[]> {
    const members = await this.#client.zrangebyscore(this.#key(room, 'presence'), `(${Date.now()}`, '+inf')
    const users = new Map<string, User>()
    for (const member of members) {
      const [, id, name] = JSON.parse(member) as [string, string, string]
      if (!users.has(id)) users.set(id, { id, name })
    }
    return [...users.values()]
  }

  /** Keeps this node's presence alive, and sweeps out other nodes' expired members. */
  #refresh (): void {
    const redis = this.#redis
    if (redis === null || redis.status !== 'ready') return
    const now = Date.now()
    const expiry = now + this.#ttl
    const pipeline = redis.pipeline()
    for (const [key, member] of this.#present) {
      const [room] = JSON.parse(key) as [string]
      pipeline.zadd(this.#key(room, 'presence'), 'XX', expiry, member)
    }
    for (const room of this.#rooms.keys()) {
      (pipeline as unknown as { chatSweep: (...args: Array<string | number>) => void })
        .chatSweep(this.#key(room, 'presence'), now, this.#channel(room), room)
    }
    pipeline.exec().catch((err: unknown) => this.#log?.warn({ err }, 'fastify-chat: presence refresh failed'))
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    const redis = this.#redis
    // Take this node's users out of presence now rather than at expiry.
    if (redis !== null && redis.status === 'ready' && this.#present.size > 0) {
      const now = Date.now()
      await Promise.all([...this.#present].map(async ([key, member]) => {
        const [room, id] = JSON.parse(key) as [string, string]
        const name = (JSON.parse(member) as [string, string, string])[2]
        await (redis as ScriptedRedis).chatLeave(this.#key(room, 'presence'), member, now, id, this.#channel(room),
          this.#presenceEvent({ room, event: 'leave', user: { id, name } }))
      })).catch((err: unknown) => this.#log?.warn({ err }, 'fastify-chat: could not clear presence on close'))
    }
    this.#present.clear()
    this.#rooms.clear()
    this.#sub?.disconnect()
    if (this.#ownClient) redis?.disconnect()
  }
}

/** Fan-out, shared history and presence across servers through Redis (ioredis). */
export function redisAdapter (opts: RedisAdapterOptions): RedisAdapter {
  return new RedisAdapter(opts)
}
