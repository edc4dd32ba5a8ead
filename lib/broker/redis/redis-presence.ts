import type { FastifyBaseLogger } from 'fastify'
import type { User } from '../../protocol/wire.js'
import { randomId } from '../../random.js'
import type { Presence, PresenceEvent } from '../presence.js'
import type { RedisConnections } from './connections.js'
import { presenceEnvelope } from './envelope.js'
import type { RedisKeys } from './keys.js'
import { queueScript, runScript } from './lua.js'
import { JOIN, LEAVE, LIST, REFRESH, RENAME, SWEEP } from './presence-scripts.js'

/** `<epoch>:<restores>`, or '' for none yet. */
function parseVersion (version: string): { epoch: string, restores: number } {
  const at = version.lastIndexOf(':')
  return at < 0 ? { epoch: '', restores: 0 } : { epoch: version.slice(0, at), restores: Number(version.slice(at + 1)) }
}

// How long a sweep's tombstones are kept: a server cut off for longer comes
// back without its users' join being announced again (see REFRESH).
const GONE_KEPT_MS = 3_600_000

/**
 * Presence across servers: per room, a Redis sorted set of
 * `[server id, user id, name]` members scored by expiry. Events travel on
 * the room's channel and reach each server's node through the adapter.
 *
 * Timing, so that a crashed server's users are announced gone within
 * `ttlMs`, the documented bound: every sixth of `ttlMs` each server
 * refreshes its members to expire two thirds of `ttlMs` later, and sweeps
 * the expired members of its rooms. A crashed server's members expire a
 * half to two thirds of `ttlMs` after the crash and are swept at most a
 * sixth later, which leaves a sixth for late timers and the trip to the
 * clients. A live server's refresh may run half of `ttlMs` late before its
 * members expire.
 *
 * The refresh also adds back the members Redis lost, and runs as soon as the
 * connection is back, so presence heals from a restart, a flush or a cut.
 */
export class RedisPresence implements Presence {
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  readonly #ttlMs: number
  readonly #server = randomId()
  #log: FastifyBaseLogger | null = null
  // This server's members: room -> user id -> member. What the refresh keeps
  // alive, and what a leave or close takes out.
  readonly #members = new Map<string, Map<string, string>>()
  // Users of this server, by room, whose leave its own sockets got: another
  // server swept them out while this one could not refresh (Redis paused).
  // Their join, when the refresh adds them back, is for these sockets too.
  readonly #sweptHere = new Map<string, Set<string>>()
  // The oldest presence version of the lists this server handed out per
  // room (of its own rooms): a member restored after it is news to whoever
  // got that list. '' is a version not named yet, after Redis lost its data.
  readonly #listed = new Map<string, { epoch: string, restores: number }>()
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
    // Commands sent right after the connection is back queue behind this
    // refresh, so a join then lists this server's users even if Redis lost them.
    const commands = this.#connections.commands
    const onReady = (): void => { this.#refresh() }
    commands.on('ready', onReady)
    this.#unwatch = () => { commands.off('ready', onReady) }
  }

  #keysOf (room: string): { presenceKey: string, goneKey: string, versionKey: string } {
    return { presenceKey: this.#keys.presence(room), goneKey: this.#keys.presenceGone(room), versionKey: this.#keys.presenceVersion(room) }
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

  #member (user: User): string {
    return JSON.stringify([this.#server, user.id, user.name])
  }

  async join (room: string, user: User): Promise<void> {
    const member = this.#member(user)
    await runScript(this.#connections.commands, JOIN, this.#keysOf(room), {
      member,
      expiry: Date.now() + this.#lifetime,
      userId: user.id,
      channel: this.#keys.channel(room),
      envelope: this.#envelope({ room, event: 'join', user }),
      presenceEpoch: randomId()
    })
    let members = this.#members.get(room)
    if (members === undefined) this.#members.set(room, members = new Map())
    members.set(user.id, member)
  }

  async leave (room: string, user: User): Promise<void> {
    const member = this.#forget(room, user.id) ?? this.#member(user)
    await this.#leave(room, user, member)
  }

  async #leave (room: string, user: User, member: string): Promise<void> {
    await runScript(this.#connections.commands, LEAVE, this.#keysOf(room), {
      member,
      userId: user.id,
      channel: this.#keys.channel(room),
      envelope: this.#envelope({ room, event: 'leave', user })
    })
  }

  #forget (room: string, userId: string): string | undefined {
    const members = this.#members.get(room)
    const member = members?.get(userId)
    members?.delete(userId)
    if (members?.size === 0) {
      this.#members.delete(room)
      this.#listed.delete(room)
    }
    const swept = this.#sweptHere.get(room)
    swept?.delete(userId)
    if (swept?.size === 0) this.#sweptHere.delete(room)
    return member
  }

  async rename (room: string, user: User, previous: string): Promise<void> {
    const members = this.#members.get(room)
    const oldMember = members?.get(user.id) ?? this.#member({ id: user.id, name: previous })
    const member = this.#member(user)
    members?.set(user.id, member)
    await runScript(this.#connections.commands, RENAME, this.#keysOf(room), {
      oldMember,
      member,
      expiry: Date.now() + this.#lifetime,
      channel: this.#keys.channel(room),
      envelope: this.#envelope({ room, event: 'rename', user, previous })
    })
  }

  async list (room: string, toMembers = false): Promise<User[]> {
    const [version, ...members] = await runScript(this.#connections.commands, LIST, this.#keysOf(room), this.#sweepArgs(room, Date.now()))
    if (toMembers) this.#noteListed(room, version)
    const users = new Map<string, User>()
    for (const member of members) {
      const [, id, name] = JSON.parse(member) as [string, string, string]
      if (!users.has(id)) users.set(id, { id, name })
    }
    return [...users.values()]
  }

  #envelope (event: PresenceEvent): string {
    // Only the user's id and name travel, whatever else the object holds.
    return presenceEnvelope({ ...event, user: { id: event.user.id, name: event.user.name } })
  }

  #sweepArgs (room: string, now: number): { now: number, channel: string, room: string, goneKeptMs: number } {
    return { now, channel: this.#keys.channel(room), room, goneKeptMs: GONE_KEPT_MS }
  }

  /** Keeps this server's members alive (adding back the missing ones), and sweeps out other servers' expired ones. */
  #refresh (): void {
    if (!this.#connections.ready || this.#members.size === 0) return
    const now = Date.now()
    const expiry = now + this.#lifetime
    const pipeline = this.#connections.commands.pipeline()
    for (const [room, members] of this.#members) {
      const keys = this.#keysOf(room)
      const channel = this.#keys.channel(room)
      queueScript(pipeline, REFRESH, keys, { members: JSON.stringify([...members.values()]), expiry, channel, room, server: this.#server, presenceEpoch: randomId() })
      queueScript(pipeline, SWEEP, keys, this.#sweepArgs(room, now))
    }
    pipeline.exec().then((results) => {
      const failed = results?.find(([err]) => err !== null)
      if (failed !== undefined) this.#log?.warn({ err: failed[0] }, 'fastify-chat: presence refresh failed')
    }, (err: unknown) => this.#log?.warn({ err }, 'fastify-chat: presence refresh failed'))
  }

  /** Stops refreshing and takes this server's users out now, rather than at expiry. */
  async close (): Promise<void> {
    clearInterval(this.#timer)
    this.#unwatch?.()
    this.#unwatch = null
    const members = [...this.#members].flatMap(([room, users]) => [...users].map(([id, member]) => ({ room, id, member })))
    this.#members.clear()
    this.#sweptHere.clear()
    this.#listed.clear()
    if (members.length === 0 || !this.#connections.ready) return
    await Promise.all(members.map(async ({ room, id, member }) => {
      const [, , name] = JSON.parse(member) as [string, string, string]
      await this.#leave(room, { id, name }, member)
    })).catch((err: unknown) => this.#log?.warn({ err }, 'fastify-chat: could not clear presence on close'))
  }
}
