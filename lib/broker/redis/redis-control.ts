import type { FastifyBaseLogger } from 'fastify'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'
import type { User } from '../../protocol/wire.js'
import { randomId } from '../../random.js'
import type { Control, ControlCommand, ControlNode } from '../control.js'
import type { RedisConnections } from './connections.js'
import type { RedisKeys } from './keys.js'
import { unavailableOnError } from './lua.js'
import { RetryLoop } from './retry-loop.js'

/**
 * Control across servers through Redis: commands on one control channel
 * that every server subscribes to, and each direct room's two users in a
 * hash beside the room's other keys (same slot on a cluster).
 */
export class RedisControl implements Control {
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  readonly #commandTimeoutMs: number
  // Commands this server sent come back on the channel; it ran them already.
  readonly #server = randomId()
  #node: ControlNode | null = null
  #log: FastifyBaseLogger | null = null
  readonly #listening = new RetryLoop(async () => await this.#subscribe(),
    (err) => this.#log?.warn({ err }, 'fastify-chat: could not subscribe the control channel; trying again'))

  constructor (connections: RedisConnections, keys: RedisKeys, commandTimeoutMs: number) {
    this.#connections = connections
    this.#keys = keys
    this.#commandTimeoutMs = commandTimeoutMs
  }

  start (node: ControlNode, log: FastifyBaseLogger): void {
    this.#node = node
    this.#log = log
  }

  /**
   * Subscribes the control channel: at start, and whenever the subscriber is
   * back (until it worked). Commands sent while it was away are not
   * replayed: pub/sub keeps nothing.
   */
  async listen (): Promise<void> {
    await this.#listening.kick()
  }

  /** Subscribes the control channel once, now: at start, where a failure fails `register`. */
  async subscribed (): Promise<void> {
    if (!await this.#subscribe()) throw new FST_CHAT_ADAPTER_UNAVAILABLE('not subscribed to Redis')
  }

  async #subscribe (): Promise<boolean> {
    if (!this.#connections.listening) return false
    await unavailableOnError(this.#connections.subscriber.subscribe(this.#keys.control), this.#commandTimeoutMs)
    return true
  }

  async send (command: ControlCommand): Promise<void> {
    // Sent while this server does not listen, it would still reach the
    // others; but a server cut off from Redis should say so, not half-work.
    if (!this.#connections.listening) throw new FST_CHAT_ADAPTER_UNAVAILABLE('not subscribed to Redis')
    const payload = JSON.stringify({ t: 'c', s: this.#server, c: command })
    await unavailableOnError(this.#connections.commands.publish(this.#keys.control, payload), this.#commandTimeoutMs)
  }

  /** A command from the control channel; run here unless this server sent it. */
  receive (server: string, command: ControlCommand): void {
    if (server === this.#server || typeof command !== 'object' || command === null) return
    try {
      this.#node?.command(command)
    } catch (err) {
      this.#log?.error({ err }, 'fastify-chat: a control command failed')
    }
  }

  async pair (room: string, user: User, otherId: string): Promise<void> {
    const key = this.#keys.pair(room)
    const written = this.#connections.commands.multi()
      .hset(key, user.id, user.name)
      .hsetnx(key, otherId, otherId)
      .exec()
    const results = await unavailableOnError(written, this.#commandTimeoutMs)
    const failed = results?.find(([err]) => err !== null)
    if (results === null || failed !== undefined) throw new FST_CHAT_ADAPTER_UNAVAILABLE(`Redis: ${String(failed?.[0] ?? 'transaction aborted')}`)
  }

  async pairOf (room: string): Promise<User[] | null> {
    const users = await unavailableOnError(this.#connections.commands.hgetall(this.#keys.pair(room)), this.#commandTimeoutMs)
    const entries = Object.entries(users)
    return entries.length === 0 ? null : entries.map(([id, name]) => ({ id, name }))
  }

  close (): void {
    this.#listening.close()
    this.#node = null
  }
}
