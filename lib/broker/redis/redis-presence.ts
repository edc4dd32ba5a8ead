import type { FastifyBaseLogger } from 'fastify'
import type { User } from '../../protocol/wire.js'
import { randomId } from '../../random.js'
import type { Presence, PresenceEvent } from '../presence.js'
import type { RedisConnections } from './connections.js'
import { presenceEnvelope } from './envelope.js'
import type { RedisKeys } from './keys.js'
import { JOIN, LEAVE, RENAME, SWEEP, queueScript, runScript, unavailableOnError } from './scripts.js'

/**
 * Presence across servers: per room, a Redis sorted set of
 * `[server id, user id, name]` members scored by expiry. Each server
 * refreshes its own members every `ttlMs / 3`, so a crashed server's users
 * expire within `ttlMs`; the sweep then announces them gone. Events travel
 * on the room's channel and reach each server's node through the adapter.
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
  #timer: NodeJS.Timeout | undefined

  constructor (connections: RedisConnections, keys: RedisKeys, ttlMs: number) {
    this.#connections = connections
    this.#keys = keys
    this.#ttlMs = ttlMs
  }

  start (log: FastifyBaseLogger): void {
    this.#log = log
    this.#timer = setInterval(() => { this.#refresh() }, Math.max(10, Math.floor(this.#ttlMs / 3)))
    this.#timer.unref()
  }

  #member (user: User): string {
    return JSON.stringify([this.#server, user.id, user.name])
  }

  async join (room: string, user: User): Promise<void> {
    const member = this.#member(user)
    const now = Date.now()
    await runScript(this.#connections.commands, JOIN, { presenceKey: this.#keys.presence(room) }, {
      member,
      expiry: now + this.#ttlMs,
      now,
      userId: user.id,
      channel: this.#keys.channel(room),
      envelope: this.#envelope({ room, event: 'join', user })
    })
    let members = this.#members.get(room)
    if (members === undefined) this.#members.set(room, members = new Map())
    members.set(user.id, member)
  }

  async leave (room: string, user: User): Promise<void> {
    const member = this.#forget(room, user.id) ?? this.#member(user)
    await this.#leave(room, user, member, Date.now())
  }

  async #leave (room: string, user: User, member: string, now: number): Promise<void> {
    await runScript(this.#connections.commands, LEAVE, { presenceKey: this.#keys.presence(room) }, {
      member,
      now,
      userId: user.id,
      channel: this.#keys.channel(room),
      envelope: this.#envelope({ room, event: 'leave', user })
    })
  }

  #forget (room: string, userId: string): string | undefined {
    const members = this.#members.get(room)
    const member = members?.get(userId)
    members?.delete(userId)
    if (members?.size === 0) this.#members.delete(room)
    return member
  }

  async rename (room: string, user: User, previous: string): Promise<void> {
    const members = this.#members.get(room)
    const oldMember = members?.get(user.id) ?? this.#member({ id: user.id, name: previous })
    const member = this.#member(user)
    members?.set(user.id, member)
    await runScript(this.#connections.commands, RENAME, { presenceKey: this.#keys.presence(room) }, {
      oldMember,
      member,
      expiry: Date.now() + this.#ttlMs,
      channel: this.#keys.channel(room),
      envelope: this.#envelope({ room, event: 'rename', user, previous })
    })
  }

  async list (room: string): Promise<User[]> {
    const members = await unavailableOnError(this.#connections.commands.zrangebyscore(this.#keys.presence(room), `(${Date.now()}`, '+inf'))
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

  /** Keeps this server's members alive, and sweeps out other servers' expired ones. */
  #refresh (): void {
    if (!this.#connections.ready || this.#members.size === 0) return
    const now = Date.now()
    const expiry = now + this.#ttlMs
    const pipeline = this.#connections.commands.pipeline()
    for (const [room, members] of this.#members) {
      const presenceKey = this.#keys.presence(room)
      for (const member of members.values()) pipeline.zadd(presenceKey, 'XX', expiry, member)
      queueScript(pipeline, SWEEP, { presenceKey }, { now, channel: this.#keys.channel(room), room })
    }
    pipeline.exec().catch((err: unknown) => this.#log?.warn({ err }, 'fastify-chat: presence refresh failed'))
  }

  /** Stops refreshing and takes this server's users out now, rather than at expiry. */
  async close (): Promise<void> {
    clearInterval(this.#timer)
    const members = [...this.#members].flatMap(([room, users]) => [...users].map(([id, member]) => ({ room, id, member })))
    this.#members.clear()
    if (members.length === 0 || !this.#connections.ready) return
    const now = Date.now()
    await Promise.all(members.map(async ({ room, id, member }) => {
      const [, , name] = JSON.parse(member) as [string, string, string]
      await this.#leave(room, { id, name }, member, now)
    })).catch((err: unknown) => this.#log?.warn({ err }, 'fastify-chat: could not clear presence on close'))
  }
}
