import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { User } from '../../protocol/wire.js'
import { randomId } from '../../random.js'
import type { PageRequest, Presence, PresenceEvent, PresencePage } from '../presence.js'
import type { RedisConnections } from './connections.js'
import type { PresenceKeys, RedisKeys } from './keys.js'
import { runScript } from './lua.js'
import { JOIN, LEAVE, MEMBERS, PAGE, REFRESH, RENAME, RESTORE, SWEEP } from './presence-scripts.js'

/** `<epoch>:<restores>`, or '' for none yet. */
function parseVersion (version: string): { epoch: string, restores: number } {
  const at = version.lastIndexOf(':')
  return at < 0 ? { epoch: '', restores: 0 } : { epoch: version.slice(0, at), restores: Number(version.slice(at + 1)) }
}

/** 28 bits of the id's SHA-1, as the presence scripts' digest() computes them. */
function memberDigest (id: string): number {
  return Number.parseInt(createHash('sha1').update(id).digest('hex').slice(0, 7), 16)
}

function slices<T> (items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

// How long a sweep's tombstones are kept: a server cut off for longer comes
// back without its users' join being announced again (see RESTORE).
const GONE_KEPT_MS = 3_600_000

// Members per RESTORE, LEAVE (on close) or MEMBERS call: each call stays
// within a few milliseconds of Redis time, whatever the room's size.
const SLICE = 500

// Sweep calls in one go (each takes out at most 200 members): enough for a
// dead server with a million members in a room; what is left waits for the
// next refresh.
const MAX_SWEEP_CALLS = 5000

/**
 * Presence across servers: per room, a Redis sorted set of the present
 * users (paged by id, counted in O(1)), their names, on how many servers
 * each is, each server's own members and the servers' heartbeats (see
 * presence-scripts.ts). A join or leave costs O(log n), and nothing reads a
 * room's users beyond a page. Events travel on the room's channel and reach
 * each server's node through the adapter.
 *
 * Timing, so that a crashed server's users are announced gone within
 * `ttlMs`, the documented bound: every sixth of `ttlMs` each server
 * refreshes its heartbeat in each of its rooms, to expire two thirds of
 * `ttlMs` later, and sweeps the dead servers' members out of them, a slice
 * per call until none is left. A crashed server's heartbeat expires a half
 * to two thirds of `ttlMs` after the crash and is swept at most a sixth
 * later, which leaves a sixth for late timers, the slices and the trip to
 * the clients. A live server's refresh may run half of `ttlMs` late before
 * its heartbeat expires.
 *
 * The refresh also tells how many members Redis holds for this server, and
 * a digest of which: when they are not what it holds, it adds back those missing (Redis lost
 * them, or a sweep took them while it was cut off or paused) and takes out
 * those it no longer has (a leave whose answer was lost); the same runs as
 * soon as the connection is back, so presence heals from a restart, a flush
 * or a cut.
 */
export class RedisPresence implements Presence {
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  readonly #ttlMs: number
  readonly #server = randomId()
  #log: FastifyBaseLogger | null = null
  // This server's members: room -> user id -> name. What the refresh keeps
  // alive, and what a leave or close takes out.
  readonly #members = new Map<string, Map<string, string>>()
  // The sum of the digests of this server's members, per room: what Redis
  // holds for it when they agree (see the digests key).
  readonly #digests = new Map<string, number>()
  // Joins sent and not answered yet, by room: Redis may count them already.
  readonly #joining = new Map<string, Set<string>>()
  // Users of this server, by room, whose leave its own sockets got: another
  // server swept them out while this one could not refresh (Redis paused).
  // Their join, when the refresh adds them back, is for these sockets too.
  readonly #sweptHere = new Map<string, Set<string>>()
  // The oldest presence version of the pages this server handed to its
  // members per room: a member restored after it is news to whoever got
  // that page. '' is a version not named yet, after Redis lost its data.
  readonly #listed = new Map<string, { epoch: string, restores: number }>()
  // Rooms being reconciled, and the sweeps running, one of each per room.
  readonly #reconciling = new Set<string>()
  readonly #sweeps = new Map<string, Promise<void>>()
  #timer: NodeJS.Timeout | undefined
  #unwatch: (() => void) | null = null

  constructor (connections: RedisConnections, keys: RedisKeys, ttlMs: number) {
    this.#connections = connections
    this.#keys = keys
    this.#ttlMs = ttlMs
  }

  /**
   * Whether this server's sockets get a presence event that came through
   * Redis. A join this server's refresh re-announced (`s`) reaches them only
   * if they got the leave: when this server was cut off they did not, and
   * still list the user. A member Redis lost and a refresh restored (`v`)
   * is news only where a list was handed out without it.
   */
  accepts ({ e: event, s: server, v: version }: { e: PresenceEvent, s?: string, v?: string }): boolean {
    if (version !== undefined) return this.#listedWithout(event.room, version)
    const swept = this.#sweptHere.get(event.room)
    if (server === this.#server) {
      const saw = swept?.delete(event.user.id) === true
      if (swept?.size === 0) this.#sweptHere.delete(event.room)
      return saw
    }
    if (event.event === 'leave' && this.#members.get(event.room)?.has(event.user.id) === true) {
      if (swept === undefined) this.#sweptHere.set(event.room, new Set([event.user.id]))
      else swept.add(event.user.id)
    }
    return true
  }

  get #lifetime (): number {
    return Math.floor(this.#ttlMs * 2 / 3)
  }

  start (log: FastifyBaseLogger): void {
    this.#log = log
    this.#timer = setInterval(() => { this.#refresh() }, Math.max(5, Math.floor(this.#ttlMs / 6)))
    this.#timer.unref()
    // Sent as the connection comes back, ahead of anything else on it: a
    // join then lists this server's users even if Redis lost them.
    const commands = this.#connections.commands
    const onReady = (): void => { for (const room of this.#members.keys()) this.#reconcile(room) }
    commands.on('ready', onReady)
    this.#unwatch = () => { commands.off('ready', onReady) }
  }

  #keysOf (room: string): PresenceKeys {
    return this.#keys.presence(room)
  }

  // Where and how the scripts announce.
  #announce (room: string): { channel: string, room: string, publishCmd: string } {
    return { channel: this.#keys.channel(room), room, publishCmd: this.#connections.publishCommand }
  }

  #sweepArgs (room: string): { now: number, goneKeptMs: number, channel: string, room: string, publishCmd: string } {
    return { now: Date.now(), goneKeptMs: GONE_KEPT_MS, ...this.#announce(room) }
  }

  #noteListed (room: string, version: string): void {
    if (!this.#members.has(room)) return
    const seen = parseVersion(version)
    const oldest = this.#listed.get(room)
    // A new epoch (or none yet) means Redis lost the data the older lists came from.
    if (oldest === undefined || seen.epoch === '' || (oldest.epoch !== '' && oldest.epoch !== seen.epoch)) this.#listed.set(room, seen)
    // A list before the epoch was named saw no restore of it.
    else if (oldest.epoch === '') this.#listed.set(room, { epoch: seen.epoch, restores: 0 })
    else oldest.restores = Math.min(oldest.restores, seen.restores)
  }

  #listedWithout (room: string, version: string): boolean {
    const restored = parseVersion(version)
    const oldest = this.#listed.get(room)
    return oldest !== undefined && (oldest.epoch === '' || oldest.epoch === restored.epoch) && oldest.restores < restored.restores
  }

  async join (room: string, user: User): Promise<void> {
    let joining = this.#joining.get(room)
    if (joining === undefined) this.#joining.set(room, joining = new Set())
    joining.add(user.id)
    try {
      await runScript(this.#connections.commands, JOIN, this.#keysOf(room), {
        server: this.#server,
        userId: user.id,
        name: user.name,
        expiry: Date.now() + this.#lifetime,
        presenceEpoch: randomId(),
        ...this.#announce(room)
      })
    } finally {
      joining.delete(user.id)
      if (joining.size === 0 && this.#joining.get(room) === joining) this.#joining.delete(room)
    }
    let members = this.#members.get(room)
    if (members === undefined) this.#members.set(room, members = new Map())
    if (!members.has(user.id)) this.#digests.set(room, (this.#digests.get(room) ?? 0) + memberDigest(user.id))
    members.set(user.id, user.name)
  }

  async leave (room: string, user: User): Promise<void> {
    this.#forget(room, user.id)
    await this.#leave(room, [user.id])
  }

  async #leave (room: string, ids: string[]): Promise<void> {
    await runScript(this.#connections.commands, LEAVE, this.#keysOf(room), { server: this.#server, users: JSON.stringify(ids), ...this.#announce(room) })
  }

  #forget (room: string, userId: string): void {
    const members = this.#members.get(room)
    if (members?.delete(userId) === true) this.#digests.set(room, (this.#digests.get(room) ?? 0) - memberDigest(userId))
    if (members?.size === 0) {
      this.#members.delete(room)
      this.#digests.delete(room)
      this.#listed.delete(room)
    }
    const swept = this.#sweptHere.get(room)
    swept?.delete(userId)
    if (swept?.size === 0) this.#sweptHere.delete(room)
  }

  async rename (room: string, user: User, previous: string): Promise<void> {
    const members = this.#members.get(room)
    if (members?.has(user.id) === true) members.set(user.id, user.name)
    await runScript(this.#connections.commands, RENAME, this.#keysOf(room), { userId: user.id, name: user.name, previous, ...this.#announce(room) })
  }

  async page (room: string, request: PageRequest, toMembers = false): Promise<PresencePage> {
    const ask = async (sweep: 0 | 1): Promise<Array<string | number>> => await runScript(this.#connections.commands, PAGE, this.#keysOf(room), {
      after: request.after ?? '', limit: request.limit, sweep, ...this.#sweepArgs(room)
    })
    let reply = await ask(1)
    if (reply[0] === 1) {
      // A dead server's members are being swept: the page waits for the
      // sweep, so that it lists nobody whose leave is still to come.
      await this.#sweep(room)
      reply = await ask(0)
    }
    const [, version, count, more, ...flat] = reply as [number, string, number, number, ...string[]]
    if (toMembers) this.#noteListed(room, version)
    const users: User[] = []
    for (let i = 0; i + 1 < flat.length; i += 2) users.push({ id: flat[i], name: flat[i + 1] })
    return more === 1 && users.length > 0 ? { users, count, next: users[users.length - 1].id } : { users, count }
  }

  async count (room: string): Promise<number> {
    return (await this.page(room, { limit: 0 })).count
  }

  /** Sweeps dead servers' members out of `room`, a slice per call, until none is left; one run per room at a time. */
  async #sweep (room: string): Promise<void> {
    const running = this.#sweeps.get(room)
    if (running !== undefined) return await running
    const run = (async () => {
      for (let calls = 0; calls < MAX_SWEEP_CALLS; calls++) {
        const [, more] = await runScript(this.#connections.commands, SWEEP, this.#keysOf(room), this.#sweepArgs(room))
        if (more === 0) return
      }
      this.#log?.warn({ room }, 'fastify-chat: presence sweep cut short; the next refresh goes on')
    })()
    this.#sweeps.set(room, run)
    try {
      await run
    } finally {
      this.#sweeps.delete(room)
    }
  }

  /** Keeps this server's heartbeat in each of its rooms, sweeps out dead servers' members, and reconciles a room whose count is off. */
  #refresh (): void {
    if (!this.#connections.ready || this.#members.size === 0) return
    const now = Date.now()
    // One call per room, all sent at once (no MULTI or pipeline object: on a cluster, rooms live on different shards).
    const sent = [...this.#members].map(async ([room, members]) => {
      // What Redis should hold for this server: its members, and maybe some
      // of the joins in flight; exactly its members when none is.
      const least = members.size
      const most = least + (this.#joining.get(room)?.size ?? 0)
      const digest = this.#digests.get(room) ?? 0
      const [count, more, held] = await runScript(this.#connections.commands, REFRESH, this.#keysOf(room), {
        server: this.#server,
        expiry: now + this.#lifetime,
        now,
        goneKeptMs: GONE_KEPT_MS,
        ...this.#announce(room)
      })
      if (count < least || count > most || (least === most && Number(held) !== digest)) this.#reconcile(room)
      if (more === 1) await this.#sweep(room)
    })
    Promise.allSettled(sent).then((results) => {
      const failed = results.find((result) => result.status === 'rejected')
      if (failed !== undefined) this.#log?.warn({ err: failed.reason }, 'fastify-chat: presence refresh failed')
    })
  }

  /**
   * Makes Redis hold exactly this server's members of `room`: adds back the
   * missing ones, in slices sent at once so that they run before anything
   * sent after, then takes out any Redis has that this server does not.
   */
  #reconcile (room: string): void {
    const members = this.#members.get(room)
    if (members === undefined || this.#reconciling.has(room) || !this.#connections.ready) return
    this.#reconciling.add(room)
    const most = members.size + (this.#joining.get(room)?.size ?? 0)
    const expiry = Date.now() + this.#lifetime
    const presenceEpoch = randomId()
    const parts = slices([...members], SLICE)
    const sent = parts.map(async (part, i) => await runScript(this.#connections.commands, RESTORE, this.#keysOf(room), {
      server: this.#server,
      users: JSON.stringify(part),
      expiry,
      last: i === parts.length - 1 ? 1 : 0,
      presenceEpoch,
      ...this.#announce(room)
    }))
    Promise.all(sent)
      .then(async (counts) => { if (counts[counts.length - 1] > most) await this.#dropStale(room) })
      .catch((err: unknown) => this.#log?.warn({ err }, 'fastify-chat: presence restore failed'))
      .finally(() => this.#reconciling.delete(room))
  }

  /** Takes out of Redis the members of `room` this server no longer has (a leave whose answer was lost, say), a page at a time. */
  async #dropStale (room: string): Promise<void> {
    let after = ''
    // Bounded by the members Redis holds for this server, a page per call.
    for (let pages = 0; pages < 100_000; pages++) {
      const ids = await runScript(this.#connections.commands, MEMBERS, this.#keysOf(room), { server: this.#server, after, limit: SLICE })
      const members = this.#members.get(room)
      const joining = this.#joining.get(room)
      const stale = ids.filter((id) => members?.has(id) !== true && joining?.has(id) !== true)
      if (stale.length > 0) await this.#leave(room, stale)
      if (ids.length < SLICE) return
      after = ids[ids.length - 1]
    }
  }

  /** Stops refreshing and takes this server's users out now, rather than at expiry. */
  async close (): Promise<void> {
    clearInterval(this.#timer)
    this.#unwatch?.()
    this.#unwatch = null
    const rooms = [...this.#members].map(([room, users]) => ({ room, ids: [...users.keys()] }))
    this.#members.clear()
    this.#digests.clear()
    this.#sweptHere.clear()
    this.#listed.clear()
    if (rooms.length === 0 || !this.#connections.ready) return
    await Promise.all(rooms.flatMap(({ room, ids }) => slices(ids, SLICE).map(async (part) => await this.#leave(room, part))))
      .catch((err: unknown) => this.#log?.warn({ err }, 'fastify-chat: could not clear presence on close'))
  }
}
