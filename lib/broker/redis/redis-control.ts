import type { FastifyBaseLogger } from 'fastify'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'
import type { User } from '../../protocol/wire.js'
import { randomId } from '../../random.js'
import type { Control, ControlCommand, ControlNode } from '../control.js'
import type { RedisConnections } from './connections.js'
import { CONTROL, CONTROL_SINCE } from './control-scripts.js'
import type { Envelope } from './envelope.js'
import type { RedisKeys } from './keys.js'
import { runScript, unavailableOnError } from './lua.js'
import { RetryLoop } from './retry-loop.js'

type ControlEnvelope = Extract<Envelope, { t: 'c' }>

// About how many commands the control log keeps: every message in a direct
// room adds one, so this is what a server away from Redis can catch up on.
const LOG_ENTRIES = 10_000
// What the channel may bring while the log is read; past it the read is done again.
const MAX_HELD = 10_000

/** Orders control log ids (`<ms>-<seq>`). */
function compareIds (a: string, b: string): number {
  const [aMs, aSeq] = a.split('-').map(Number)
  const [bMs, bSeq] = b.split('-').map(Number)
  return aMs !== bMs ? aMs - bMs : aSeq - bSeq
}

/**
 * Control across servers through Redis. Commands go into a capped stream,
 * the control log, and out on one control channel that every server
 * subscribes to, in one script (see control-scripts.ts for which pub/sub). A server whose subscriber was away reads
 * the log from the last entry it saw once it is back, so a kick reaches it
 * late rather than never. Each direct room's two users are a hash beside
 * the room's other keys (same slot on a cluster).
 */
export class RedisControl implements Control {
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  readonly #commandTimeoutMs: number
  // Commands this server sent come back on the channel; it ran them already.
  readonly #server = randomId()
  #node: ControlNode | null = null
  #log: FastifyBaseLogger | null = null
  // The newest log entry run here (or sent from here); null until first listening.
  #lastId: string | null = null
  // While the log is read: what the channel brings meanwhile, run after it.
  #held: ControlEnvelope[] | null = null
  #overflowed = false
  // One read of the log at a time: two would each run what the other skipped.
  #chain: Promise<unknown> = Promise.resolve()
  readonly #listening = new RetryLoop(async () => await this.#attempt(),
    (err) => this.#log?.warn({ err }, 'fastify-chat: could not listen to the control channel again; trying again'))

  constructor (connections: RedisConnections, keys: RedisKeys, commandTimeoutMs: number) {
    this.#connections = connections
    this.#keys = keys
    this.#commandTimeoutMs = commandTimeoutMs
  }

  start (node: ControlNode, log: FastifyBaseLogger): void {
    this.#node = node
    this.#log = log
  }

  /** The subscriber is (back) up: listen again, and run what the log has that was missed. Retried until it worked. */
  async listen (): Promise<void> {
    await this.#listening.kick()
  }

  /** Listens once, now: at start, where a failure fails `register`. */
  async subscribed (): Promise<void> {
    if (!await this.#attempt()) throw new FST_CHAT_ADAPTER_UNAVAILABLE('not connected to Redis')
  }

  async #attempt (): Promise<boolean> {
    const run = this.#chain.then(async () => await this.#subscribe())
    this.#chain = run.catch(() => {})
    return await run
  }

  async #subscribe (): Promise<boolean> {
    if (!this.#connections.listening || !this.#connections.ready) return false
    this.#held ??= []
    await unavailableOnError(this.#connections.subscribeControl(this.#keys.control), this.#commandTimeoutMs)
    const after = this.#lastId ?? ''
    const [oldest, newest, ...entries] = await runScript(this.#connections.commands, CONTROL_SINCE,
      { logKey: this.#keys.controlLog }, { after, limit: LOG_ENTRIES })
    if (this.#lastId === null) {
      // Nothing before now concerns this server: it had no sockets.
      this.#lastId = newest === '' ? '0-0' : newest
    } else {
      if (oldest !== '' && compareIds(oldest, after) > 0 && after !== '0-0') {
        this.#log?.warn({ after, oldest }, 'fastify-chat: the control log no longer holds every command since this server last listened; some may be missed')
      }
      for (let i = 0; i < entries.length; i += 2) {
        const envelope = parseControl(entries[i + 1])
        if (envelope !== null) this.#run({ ...envelope, i: entries[i] }, true)
      }
    }
    const held = this.#held ?? []
    this.#held = null
    if (this.#overflowed) {
      // Too much came meanwhile to keep: the log has it, read it again.
      this.#overflowed = false
      this.#held = []
      return false
    }
    for (const envelope of held) this.#run(envelope, false)
    return true
  }

  async send (command: ControlCommand): Promise<void> {
    // A server cut off from Redis says so rather than half-working.
    if (!this.#connections.listening) throw new FST_CHAT_ADAPTER_UNAVAILABLE('not subscribed to Redis')
    const payload = JSON.stringify({ t: 'c', s: this.#server, at: Date.now(), c: command })
    await runScript(this.#connections.commands, CONTROL, { logKey: this.#keys.controlLog },
      { payload, publish: this.#connections.controlPublishCommand, channel: this.#keys.control, maxLen: LOG_ENTRIES })
  }

  /** A command from the control channel; run here unless this server sent it or ran it already. */
  receive (envelope: ControlEnvelope): void {
    if (this.#held !== null) {
      if (this.#held.length < MAX_HELD) this.#held.push(envelope)
      else this.#overflowed = true
      return
    }
    this.#run(envelope, false)
  }

  #run (envelope: ControlEnvelope, late: boolean): void {
    const { i: id, s: server, at, c: command } = envelope
    if (typeof id === 'string') {
      if (this.#lastId !== null && compareIds(id, this.#lastId) <= 0) return
      this.#lastId = id
    }
    if (server === this.#server || typeof command !== 'object' || command === null) return
    try {
      this.#node?.command(command, late && typeof at === 'number' ? at : undefined)
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

/** A control envelope from the log; null for anything else. */
function parseControl (payload: string | undefined): ControlEnvelope | null {
  try {
    const envelope = JSON.parse(payload ?? '') as ControlEnvelope | null
    return envelope?.t === 'c' ? envelope : null
  } catch {
    return null
  }
}
