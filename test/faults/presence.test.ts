// Presence under real faults: two chat instances on one real redis-server,
// raw ws members spread over them in one room. The faults: a restart with and
// without persistence, a pause, a hang, a cut. After each fault heals,
// `app.chat.presence()` on both instances and a newcomer's `joined.users`
// list every connected user exactly once, `app.chat.occupancy()` and
// `joined.count` count each once, within one refresh interval (plus
// slack), and no member was ever told of a user twice. Also: a join refused
// once and retried is announced, and a crashed instance's users are
// announced gone within presenceTtlMs.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { redisAdapter } from '../../index.js'
import type { RedisAdapterOptions, ServerFrame, User } from '../../index.js'
import { listen, within } from '../helpers/chat.js'
import { eventually } from '../helpers/eventually.js'
import { adapterEvent, adminClient, startRedis } from '../helpers/redis.js'
import type { RedisServer, RedisServerOptions } from '../helpers/redis.js'
import { startProxy } from '../helpers/tcp-proxy.js'
import type { TcpProxy } from '../helpers/tcp-proxy.js'

const ROOM = 'lobby'
const TTL_MS = 3000
// What "one refresh interval" is (see RedisPresence), and the slack on top
// of it: ioredis's reconnect backoff, and a busy machine.
const REFRESH_MS = TTL_MS / 6
const SLACK_MS = 3000
const PER_INSTANCE = 3

/** One raw ws member of ROOM: who it was told is there, from `joined.users` and presence events. */
class Member {
  readonly ws: WebSocket
  id = ''
  readonly view = new Map<string, string>()
  /** Users it was told joined while it listed them already. */
  readonly twice: string[] = []
  /** How many `joined` of the room it got: more than one means a reset. */
  joinedCount = 0
  /** When it was told each user left. */
  readonly left = new Map<string, number>()
  readonly #joined: Promise<{ users: User[], count: number }>
  #changed: Array<() => void> = []

  constructor (ws: WebSocket) {
    this.ws = ws
    let first: ((joined: { users: User[], count: number }) => void) | null = null
    this.#joined = new Promise((resolve) => { first = resolve })
    ws.on('error', () => {})
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as ServerFrame
      if (frame.type === 'welcome') this.id = frame.id
      // Any `joined` of the room (an answer, or a reset after a fault) replaces the list.
      if (frame.type === 'joined' && frame.room === ROOM) {
        this.joinedCount++
        this.view.clear()
        for (const user of frame.users) this.view.set(user.id, user.name)
        first?.(frame)
        first = null
      }
      if (frame.type === 'presence' && frame.room === ROOM) {
        if (frame.event === 'leave') {
          this.view.delete(frame.user.id)
          this.left.set(frame.user.id, Date.now())
        } else {
          if (frame.event === 'join' && this.view.has(frame.user.id)) this.twice.push(frame.user.id)
          this.view.set(frame.user.id, frame.user.name)
        }
      }
      for (const wake of this.#changed.splice(0)) wake()
    })
  }

  /** Connects to `url` (auto-joined to ROOM) and waits for its `joined`. */
  static async join (t: Test, url: string): Promise<{ member: Member, users: User[], count: number }> {
    const member = new Member(new WebSocket(`${url}/chat`))
    t.teardown(() => member.ws.terminate())
    const { users, count } = await within(member.#joined, 5000, 'joined')
    return { member, users, count }
  }

  /** Resolves at its next frame, or after `ms`. */
  async next (ms: number): Promise<void> {
    await within(new Promise<void>((resolve) => this.#changed.push(resolve)), ms, 'a frame').catch(() => {})
  }

  /** Resolves once the view holds exactly `ids`. */
  async sees (ids: Set<string>, ms: number): Promise<void> {
    const exact = (): boolean => this.view.size === ids.size && [...ids].every((id) => this.view.has(id))
    const deadline = Date.now() + ms
    while (!exact()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`member ${this.id} lists ${JSON.stringify([...this.view.keys()])}, not ${JSON.stringify([...ids])}`)
      await within(new Promise<void>((resolve) => this.#changed.push(resolve)), left, 'a presence change').catch(() => {})
    }
  }
}

/** Every user `app.chat.presence` pages through, first page to last. */
async function listed (app: FastifyInstance): Promise<User[]> {
  const users: User[] = []
  let after: string | undefined
  for (let pages = 0; pages < 100; pages++) {
    const page = await app.chat.presence(ROOM, after === undefined ? { limit: 4 } : { limit: 4, after })
    users.push(...page.users)
    if (page.next === undefined) return users
    after = page.next
  }
  throw new Error('paging never ended')
}

/** Each user once, and exactly these. */
function exactlyOnce (users: User[], ids: Set<string>): boolean {
  return users.length === ids.size && users.every((u) => ids.has(u.id))
}

interface Cluster {
  redis: RedisServer
  apps: FastifyInstance[]
  urls: string[]
  members: Member[]
  proxy: TcpProxy | null
  ids: () => Set<string>
}

/** Two instances (the second through a proxy, with `proxied`) and PER_INSTANCE members on each, every member listing all. */
async function cluster (t: Test, { proxied = false, grace = 0, adapter = {}, redis: server = {} }: { proxied?: boolean, grace?: number, adapter?: Partial<RedisAdapterOptions>, redis?: RedisServerOptions } = {}): Promise<Cluster> {
  const redis = await startRedis(t, server)
  const proxy = proxied ? await startProxy(t, redis.port) : null
  const apps: FastifyInstance[] = []
  const urls: string[] = []
  for (const url of [redis.url, proxy?.url ?? redis.url]) {
    const options = { url, presenceTtlMs: TTL_MS, ...adapter } as RedisAdapterOptions
    const { app, url: wsUrl } = await listen(t, { presenceGraceMs: grace, adapter: redisAdapter(options) })
    apps.push(app)
    urls.push(wsUrl)
  }
  const members: Member[] = []
  for (let i = 0; i < PER_INSTANCE; i++) {
    for (const url of urls) members.push((await Member.join(t, url)).member)
  }
  const ids = (): Set<string> => new Set(members.map((m) => m.id))
  for (const member of members) await member.sees(ids(), 5000)
  return { redis, apps, urls, members, proxy, ids }
}

/** After a fault healed: presence() on both, then a newcomer on each instance, list everyone once, in time; no member was told of anyone twice. */
async function checkHealed (t: Test, { apps, urls, members, ids }: Cluster, what: string): Promise<void> {
  const expected = ids()
  const took = await eventually(async () => {
    for (const app of apps) {
      if (!exactlyOnce(await listed(app), expected) || await app.chat.occupancy(ROOM) !== expected.size) return false
    }
    return true
  }, REFRESH_MS + SLACK_MS, `presence() listing all ${expected.size} users on both instances after ${what}`)
  t.pass(`presence() on both instances lists all ${expected.size} users, each once, and occupancy() counts them, ${took} ms after ${what} healed`)

  for (const [i, url] of urls.entries()) {
    const { member, users, count } = await Member.join(t, url)
    t.ok(exactlyOnce(users, new Set([...expected, member.id])), `a newcomer on instance ${i} gets every user once in joined.users`)
    t.equal(count, expected.size + 1, 'and joined.count counts them')
    member.ws.close()
    await once(member.ws, 'close')
  }
  for (const member of members) await member.sees(expected, REFRESH_MS + SLACK_MS)
  t.pass('every member lists every connected user')
  t.strictSame(members.flatMap((m) => m.twice), [], 'no member was told of a user it listed already')
}

t.test('Redis restarted without persistence: presence comes back', async (t) => {
  const c = await cluster(t)
  await c.redis.restart()
  // Redis lost the room's history too: every member gets a reset joined,
  // whose list may predate the other instance's restore. Newcomers join after
  // it, or a presence event held during the reset can repeat a user its list has.
  const deadline = Date.now() + REFRESH_MS + SLACK_MS
  for (const member of c.members) {
    for (let frames = 0; frames < 100 && member.joinedCount < 2 && Date.now() < deadline; frames++) await member.next(deadline - Date.now())
  }
  t.ok(c.members.every((m) => m.joinedCount === 2), 'every member got one reset joined')
  await checkHealed(t, c, 'the restart')
})

/**
 * Sends `command` from an admin client of the test's own, which stops Redis
 * answering anyone for `ms`, and resolves once the admin's ping sent behind it
 * is answered: the fault has healed. Bounded, so a Redis that never answers
 * fails the test instead of holding it.
 */
async function hang (t: Test, redis: RedisServer, ms: number, command: string, ...args: Array<string | number>): Promise<void> {
  const admin = adminClient(t, redis)
  await within(admin.ping(), 5000, 'the admin client to connect')
  const sent = Date.now()
  await within(Promise.all([admin.call(command, ...args), admin.ping()]), ms + 5000, `Redis to answer after ${command}`)
  const took = Date.now() - sent
  // The clock's granularity, not the fault's length, is the margin here.
  t.ok(took >= ms - 50, `Redis answered nobody for ${took} ms (${command} ${args.join(' ')})`)
}

t.test('Redis paused (CLIENT PAUSE) past the members\' expiry: presence comes back', async (t) => {
  const c = await cluster(t)
  await hang(t, c.redis, TTL_MS, 'CLIENT', 'PAUSE', TTL_MS, 'ALL')
  await checkHealed(t, c, 'the pause')
})

t.test('Redis hung (DEBUG SLEEP 3): presence comes back', async (t) => {
  const c = await cluster(t, { redis: { debug: true } })
  await hang(t, c.redis, 3000, 'DEBUG', 'SLEEP', 3)
  await checkHealed(t, c, 'the hang')
})

t.test('Redis killed and restarted with AOF: presence comes back, with no reset', async (t) => {
  const c = await cluster(t, { redis: { aof: true } })
  const down = adapterEvent('down', 'commands')
  await c.redis.restart({ kill: true })
  t.ok(await down, 'an instance saw its Redis connection drop')
  await checkHealed(t, c, 'the restart')
  // The history's epoch survived in the AOF: had the data gone, members would have got a reset joined.
  t.same(c.members.filter((m) => m.joinedCount !== 1).map((m) => m.id), [], 'no member got a reset joined')
})

t.test('one instance cut off from Redis for 3 s: presence comes back', async (t) => {
  const c = await cluster(t, { proxied: true })
  await c.proxy?.cut(3000)
  await checkHealed(t, c, 'the cut')
})

t.test('a join refused (Redis out of memory), then retried within the grace period, is announced and listed', async (t) => {
  const c = await cluster(t, { grace: 10_000 })
  const admin = adminClient(t, c.redis)
  const observer = c.members[1]
  const before = new Set(c.ids())
  // Every write is refused; reads (history, the list, subscribing) still work.
  await admin.config('SET', 'maxmemory', '1')
  t.teardown(() => admin.config('SET', 'maxmemory', '0').catch(() => {}))
  const ws = new WebSocket(`${c.urls[0]}/chat`)
  t.teardown(() => ws.terminate())
  ws.on('error', () => {})
  const frames: ServerFrame[] = []
  let wake: (() => void) | null = null
  ws.on('message', (data) => { frames.push(JSON.parse(data.toString()) as ServerFrame); wake?.() })
  const next = async (type: ServerFrame['type']): Promise<ServerFrame> => {
    for (let tries = 0; tries < 20; tries++) {
      const index = frames.findIndex((f) => f.type === type)
      if (index >= 0) return frames.splice(index, 1)[0]
      await within(new Promise<void>((resolve) => { wake = resolve }), 5000, `a ${type} frame`)
    }
    throw new Error(`no ${type} frame`)
  }
  const welcome = await next('welcome') as Extract<ServerFrame, { type: 'welcome' }>
  const refused = await next('error') as Extract<ServerFrame, { type: 'error' }>
  t.equal(refused.code, 'unavailable', 'the auto-join is refused')
  t.notOk(frames.some((f) => f.type === 'joined'))

  await admin.config('SET', 'maxmemory', '0')
  ws.send(JSON.stringify({ type: 'join', room: ROOM }))
  const joined = await next('joined') as Extract<ServerFrame, { type: 'joined' }>
  const everyone = new Set([...before, welcome.id])
  t.ok(exactlyOnce(joined.users, everyone), 'the retried join lists its user with everyone else')
  await observer.sees(everyone, 5000)
  t.pass('another instance\'s member was told of the join')
  for (const app of c.apps) t.ok(exactlyOnce(await listed(app), everyone), 'presence() lists the user')
  t.strictSame(c.members.flatMap((m) => m.twice), [])
})

t.test('a crashed instance\'s users are announced gone within presenceTtlMs, and not before its members expire', async (t) => {
  const ttl = 2000
  const redis = await startRedis(t)
  const fixture = fileURLToPath(new URL('../fixtures/redis-node.mjs', import.meta.url))
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, REDIS_URL: redis.url, PRESENCE_TTL_MS: String(ttl) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const [line] = await within(once(child.stdout, 'data'), 10_000, 'the child instance to listen') as [Buffer]
  const childUrl = `ws://127.0.0.1:${line.toString().trim()}`
  const { url } = await listen(t, { adapter: redisAdapter({ url: redis.url, presenceTtlMs: ttl }) })

  const observers = [(await Member.join(t, url)).member, (await Member.join(t, url)).member]
  const crashed: Member[] = []
  for (let i = 0; i < 3; i++) crashed.push((await Member.join(t, childUrl)).member)
  const everyone = new Set([...observers, ...crashed].map((m) => m.id))
  for (const observer of observers) await observer.sees(everyone, 5000)

  const killed = Date.now()
  child.kill('SIGKILL')
  const survivors = new Set(observers.map((m) => m.id))
  for (const observer of observers) await observer.sees(survivors, ttl + 5000)
  const after = observers.flatMap((observer) => crashed.map((m) => (observer.left.get(m.id) ?? Infinity) - killed))
  t.comment(`leaves seen ${after.join(', ')} ms after the kill (presenceTtlMs ${ttl})`)
  // Members live two thirds of the TTL past their last refresh, a sixth
  // apart: none can expire before half of it. A quarter leaves room for a late timer.
  t.ok(Math.min(...after) >= ttl / 4, `not before the crashed instance's members expired (${Math.min(...after)} ms)`)
  t.ok(Math.max(...after) <= ttl, `within presenceTtlMs (${Math.max(...after)} ms)`)
})
