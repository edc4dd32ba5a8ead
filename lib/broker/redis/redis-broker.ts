import type { FastifyBaseLogger } from 'fastify'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'
import type { ChatMessage } from '../../protocol/wire.js'
import { newEpoch } from '../../stores/epoch.js'
import type { HistoryPage, NewMessage } from '../../stores/history-store.js'
import type { Broker, BrokerNode, PublishResult } from '../broker.js'
import type { RedisConnections } from './connections.js'
import type { RedisKeys } from './keys.js'
import { PUBLISH, RECENT, SINCE, runScript } from './scripts.js'

interface Held { message: ChatMessage, epoch: string, exclude: string | null }

/**
 * A room this server listens to. `epoch` and `offset` are those of the last
 * message delivered here: pub/sub may drop messages while the subscriber
 * reconnects, and this is what lets the server fill the gap from the stream
 * and still deliver each message once.
 */
interface Listening {
  epoch: string | null
  offset: number
  /** While the room catches up after a reconnect: what pub/sub brought meanwhile, delivered after the gap. */
  held: Held[] | null
}

function parse (stored: string[]): ChatMessage[] {
  return stored.map((json) => JSON.parse(json) as ChatMessage)
}

/**
 * The broker of several servers: each room's history is a Redis stream,
 * numbered and written by one script that also publishes the message on the
 * room's channel, so every server delivers in Redis's order.
 */
export class RedisBroker implements Broker {
  readonly #connections: RedisConnections
  readonly #keys: RedisKeys
  #node: BrokerNode | null = null
  #historySize = 0
  #log: FastifyBaseLogger | null = null
  readonly #rooms = new Map<string, Listening>()
  // Rooms left while the subscriber was down: ioredis subscribes to them again
  // when it reconnects, so they are unsubscribed then.
  readonly #stale = new Set<string>()

  constructor (connections: RedisConnections, keys: RedisKeys) {
    this.#connections = connections
    this.#keys = keys
  }

  start (node: BrokerNode, historySize: number, log: FastifyBaseLogger): void {
    this.#node = node
    this.#historySize = historySize
    this.#log = log
  }

  async publish (message: NewMessage, exclude: string | null): Promise<PublishResult> {
    // Without a subscriber this server would store a message it cannot deliver.
    if (!this.#connections.listening) throw new FST_CHAT_ADAPTER_UNAVAILABLE('not subscribed to Redis')
    // `room` first: the script splices `offset` in before the first key.
    const { room, ...rest } = message
    const [duplicate, stored] = await runScript(this.#connections.commands, PUBLISH, this.#keys.history(room), {
      freshEpoch: newEpoch(),
      message: JSON.stringify({ room, ...rest }),
      cid: message.cid ?? '',
      historySize: this.#historySize,
      channel: this.#keys.channel(room),
      exclude: JSON.stringify(exclude)
    })
    return { message: JSON.parse(stored) as ChatMessage, duplicate: duplicate === 1 }
  }

  async recent (room: string, limit: number): Promise<HistoryPage> {
    const [epoch, offset, ...stored] = await runScript(this.#connections.commands, RECENT, this.#keys.history(room), {
      freshEpoch: newEpoch(),
      limit
    })
    return { epoch, offset, messages: parse(stored) }
  }

  async since (room: string, offset: number): Promise<HistoryPage | null> {
    const [epoch, latest, complete, ...stored] = await runScript(this.#connections.commands, SINCE, this.#keys.history(room), {
      freshEpoch: newEpoch(),
      after: offset
    })
    if (complete !== 1) return null
    return { epoch, offset: latest, messages: parse(stored) }
  }

  async subscribe (room: string): Promise<void> {
    const added = !this.#rooms.has(room)
    if (added) this.#rooms.set(room, { epoch: null, offset: 0, held: null })
    this.#stale.delete(room)
    try {
      await this.#connections.subscriber.subscribe(this.#keys.channel(room))
    } catch (err) {
      if (added) this.#rooms.delete(room)
      throw err
    }
  }

  async unsubscribe (room: string): Promise<void> {
    this.#rooms.delete(room)
    if (!this.#connections.listening) {
      this.#stale.add(room)
      return
    }
    try {
      await this.#connections.subscriber.unsubscribe(this.#keys.channel(room))
    } catch (err) {
      this.#stale.add(room)
      throw err
    }
  }

  /** A message from a room's channel; delivered here unless delivered already. */
  receive (message: ChatMessage, epoch: string, exclude: string | null): void {
    const room = this.#rooms.get(message.room)
    if (room === undefined) return
    if (room.held !== null) room.held.push({ message, epoch, exclude })
    else this.#deliver(room, message, epoch, exclude)
  }

  #deliver (room: Listening, message: ChatMessage, epoch: string, exclude: string | null): void {
    if (room.epoch === epoch && message.offset <= room.offset) return
    room.epoch = epoch
    room.offset = message.offset
    this.#node?.deliver(message, exclude)
  }

  /**
   * After the subscriber (re)connects: listen to every room again and catch
   * up, and stop listening to rooms left while it was away.
   */
  async resume (): Promise<void> {
    await Promise.all([this.#dropStale(), ...[...this.#rooms].map(async ([name, room]) => await this.#catchUp(name, room))])
  }

  async #dropStale (): Promise<void> {
    const stale = [...this.#stale].filter((room) => !this.#rooms.has(room)).map((room) => this.#keys.channel(room))
    this.#stale.clear()
    if (stale.length === 0) return
    await this.#connections.subscriber.unsubscribe(...stale)
      .catch((err: unknown) => this.#log?.warn({ err }, 'fastify-chat: could not unsubscribe rooms left while Redis was away'))
  }

  /**
   * Delivers from the stream what pub/sub dropped meanwhile (all of a new
   * epoch's messages if Redis lost the old one), then what pub/sub brought
   * while that was read. A room where nothing was delivered yet has no
   * known position, so it resumes without catching up.
   */
  async #catchUp (name: string, room: Listening): Promise<void> {
    // Held from before the first await: the replies to ioredis's own
    // resubscription may already be on their way.
    const held: Held[] = room.held ?? []
    room.held = held
    try {
      await this.#connections.subscriber.subscribe(this.#keys.channel(name))
      if (room.epoch === null) return
      const page = await this.recent(name, this.#historySize)
      if (this.#rooms.get(name) !== room) return
      for (const message of page.messages) this.#deliver(room, message, page.epoch, null)
    } catch (err) {
      this.#log?.warn({ err, room: name }, 'fastify-chat: could not catch up a room after a Redis reconnect')
    } finally {
      room.held = null
      // Unless the room was left meanwhile.
      if (this.#rooms.get(name) === room) {
        for (const { message, epoch, exclude } of held) this.#deliver(room, message, epoch, exclude)
      }
    }
  }

  close (): void {
    this.#node = null
    this.#rooms.clear()
    this.#stale.clear()
  }
}
