import type { FastifyBaseLogger } from 'fastify'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'
import type { ChatMessage, SignalFrame } from '../../protocol/wire.js'
import { newEpoch } from '../../stores/epoch.js'
import type { HistoryPage, NewMessage, OlderPage } from '../../stores/history-store.js'
import type { Broker, BrokerNode, PublishResult } from '../broker.js'
import type { RedisConnections, Role } from './connections.js'
import type { RedisKeys } from './keys.js'
import { RetryLoop } from './retry-loop.js'
import { BEFORE, PUBLISH, RECENT, SINCE } from './history-scripts.js'
import { runScript, unavailableOnError } from './lua.js'
import { MARK_READ, READ_POSITIONS, SHARE_READ } from './read-scripts.js'
import { randomId } from '../../random.js'

interface Held { message: ChatMessage, epoch: string, exclude: string | null }

/**
 * A room this server listens to. `epoch` and `offset` are where its members
 * stand: the last message delivered here, or the room's latest when it was
 * subscribed (its first members read their history after that). Pub/sub
 * drops messages while the subscriber is away; this is what lets the server
 * fill the gap from the stream and still deliver each message once, or
 * reset the room when the stream cannot fill it.
 */
interface Listening {
  epoch: string | null
  offset: number
  /** While a fill is due: what pub/sub brought meanwhile, delivered after the gap. */
  held: Held[] | null
  /** Reconnects since the last fill began; a fill bridges only those before it. */
  pending: number
}

// Past this many held messages, waiting for a fill costs more than it saves:
// the room is reset and delivery goes on.
const MAX_HELD = 10_000

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
  // Read positions this server moved come back on the room's channel; it told its sockets already.
  readonly #server = randomId()
  // The subscriber came back and has to listen to every room again.
  #resubscribe = false
  readonly #catchUp = new RetryLoop(async () => await this.#catchUpAll(),
    (err) => this.#log?.warn({ err }, 'fastify-chat: could not catch up after a Redis reconnect; trying again'))

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
      publish: this.#connections.publishCommand,
      channel: this.#keys.channel(room),
      exclude: JSON.stringify(exclude)
    })
    return { message: JSON.parse(stored) as ChatMessage, duplicate: duplicate === 1 }
  }

  /** Publishes a signal on its room's channel, beside the room's messages but in no stream: nothing keeps it. */
  async signal (frame: SignalFrame, exclude: string | null): Promise<void> {
    const payload = JSON.stringify({ t: 's', x: exclude, s: frame })
    const { commands, publishCommand } = this.#connections
    await unavailableOnError(commands.call(publishCommand, this.#keys.channel(frame.room), payload))
  }

  /** A signal from a room's channel, for this server's members if it listens to the room. */
  receiveSignal (frame: SignalFrame, exclude: string | null): void {
    if (this.#rooms.has(frame.room)) this.#node?.signal?.(frame, exclude)
  }

  async recent (room: string, limit: number): Promise<HistoryPage> {
    const [epoch, offset, ...stored] = await runScript(this.#connections.commands, RECENT, this.#keys.history(room), {
      freshEpoch: newEpoch(),
      limit
    })
    return { epoch, offset, messages: parse(stored) }
  }

  /** Pages back through the room's stream, which keeps the latest `historySize`. */
  async before (room: string, offset: number, limit: number): Promise<OlderPage> {
    const [epoch, latest, more, ...stored] = await runScript(this.#connections.commands, BEFORE, this.#keys.history(room), {
      freshEpoch: newEpoch(),
      before: String(Math.max(0, Math.floor(offset))),
      limit: Math.max(0, Math.floor(limit))
    })
    return { epoch, offset: latest, messages: parse(stored), more: more === 1 }
  }

  async since (room: string, offset: number): Promise<HistoryPage | null> {
    const { complete, page } = await this.#since(room, offset)
    return complete ? page : null
  }

  /** The messages after `offset`, with the room's epoch and latest offset even when some are no longer kept. */
  async #since (room: string, offset: number): Promise<{ complete: boolean, page: HistoryPage }> {
    const [epoch, latest, complete, ...stored] = await runScript(this.#connections.commands, SINCE, this.#keys.history(room), {
      freshEpoch: newEpoch(),
      after: offset
    })
    return { complete: complete === 1, page: { epoch, offset: latest, messages: complete === 1 ? parse(stored) : [] } }
  }

  async entry (room: string, offset: number): Promise<ChatMessage | null> {
    // Entries are added with id `<offset>-1`: one id, one lookup.
    const id = `${offset}-1`
    const [found] = await this.#connections.commands.xrange(this.#keys.history(room).logKey, id, id)
    return found === undefined ? null : JSON.parse(found[1][1] as string) as ChatMessage
  }

  /**
   * Moves a read position; its sockets here are told at once, other
   * servers' through the room's channel when the user is in the room there.
   * The room's latest offset is where this server's members stand when it
   * listens to the room (a socket cannot have read further); otherwise Redis says.
   */
  async markRead (room: string, userId: string, offset: number, exclude: string | null): Promise<number | null> {
    const listening = this.#rooms.get(room)
    const latest = listening?.epoch != null ? listening.offset : (await this.recent(room, 0)).offset
    const moved = await runScript(this.#connections.commands, MARK_READ, { readsKey: this.#keys.reads(userId) },
      { room, offset: Math.min(offset, latest), latest })
    if (moved < 0) return null
    this.#node?.read?.(room, userId, moved, exclude)
    const envelope = JSON.stringify({ t: 'r', r: room, u: userId, o: moved, s: this.#server, x: exclude })
    await runScript(this.#connections.commands, SHARE_READ, { refsKey: this.#keys.presence(room).refsKey },
      { user: userId, publish: this.#connections.publishCommand, channel: this.#keys.channel(room), envelope })
    return moved
  }

  async readPosition (room: string, userId: string): Promise<number> {
    return await runScript(this.#connections.commands, READ_POSITIONS, { readsKey: this.#keys.reads(userId) }, { room }) as number
  }

  async readPositions (userId: string): Promise<Record<string, number>> {
    const flat = await runScript(this.#connections.commands, READ_POSITIONS, { readsKey: this.#keys.reads(userId) }, { room: '' }) as string[]
    const entries: Array<[string, number]> = []
    for (let i = 0; i + 1 < flat.length; i += 2) entries.push([flat[i], Number(flat[i + 1])])
    return Object.fromEntries(entries)
  }

  /** A read position another server moved, from a room's channel. */
  receiveRead (room: string, userId: string, offset: number, server: string, exclude: string | null): void {
    if (server === this.#server || !this.#rooms.has(room)) return
    this.#node?.read?.(room, userId, offset, exclude)
  }

  async subscribe (room: string): Promise<void> {
    let listening = this.#rooms.get(room)
    const added = listening === undefined
    if (listening === undefined) this.#rooms.set(room, listening = { epoch: null, offset: 0, held: null, pending: 0 })
    try {
      await this.#connections.subscribeRooms([this.#keys.channel(room)])
      // Read once listening: whatever comes later arrives on the channel.
      const { epoch, offset } = await this.recent(room, 0)
      if (listening.epoch === null) {
        listening.epoch = epoch
        listening.offset = offset
      }
    } catch (err) {
      if (added && this.#rooms.get(room) === listening) this.#rooms.delete(room)
      throw err
    }
  }

  async unsubscribe (room: string): Promise<void> {
    this.#rooms.delete(room)
    // A subscriber away listens to nothing when it is back: the rooms are subscribed again one by one.
    if (!this.#connections.listening) return
    await this.#connections.unsubscribeRoom(this.#keys.channel(room))
  }

  /** A message from a room's channel; delivered here unless delivered already. */
  receive (message: ChatMessage, epoch: string, exclude: string | null): void {
    const room = this.#rooms.get(message.room)
    if (room === undefined) return
    const next = room.epoch === epoch && message.offset === room.offset + 1
    if (room.held === null && room.epoch === epoch && message.offset > room.offset + 1) {
      // A gap with no reconnect seen (yet): the stream fills it.
      this.#due(room)
      this.#catchUp.kick().catch(() => {})
    }
    if (room.held !== null) {
      // The next message in line proves nothing was missed: no fill needed.
      if (room.held.length > 0 || !next) {
        room.held.push({ message, epoch, exclude })
        if (room.held.length > MAX_HELD) this.#release(message.room, room, true)
        return
      }
      room.held = null
      room.pending = 0
    }
    this.#deliver(message.room, room, message, epoch, exclude)
  }

  /** Hands `message` to the node unless delivered already; a message of another epoch resets the room first. */
  #deliver (name: string, room: Listening, message: ChatMessage, epoch: string, exclude: string | null): void {
    if (room.epoch !== epoch) {
      if (room.epoch !== null) this.#node?.reset(name)
    } else if (message.offset <= room.offset) {
      return
    }
    room.epoch = epoch
    room.offset = message.offset
    this.#node?.deliver(message, exclude)
  }

  #due (room: Listening): void {
    room.held ??= []
    room.pending++
  }

  /** Ends a room's wait: delivers what was held, after a reset when the gap cannot be filled. */
  #release (name: string, room: Listening, reset: boolean): void {
    const held = room.held ?? []
    room.held = null
    room.pending = 0
    if (reset) this.#node?.reset(name)
    for (const { message, epoch, exclude } of held) this.#deliver(name, room, message, epoch, exclude)
  }

  /**
   * A connection is (again) ready. Each room's members may have missed
   * messages meanwhile: every room holds what pub/sub brings from now on
   * until the stream fills the gap. That needs both connections; until both
   * are ready, and after a failure, it is tried again. The subscriber counts
   * as back once every room caught up; the commands connection at once.
   */
  async resume (role: Role): Promise<void> {
    if (role === 'subscriber') this.#resubscribe = true
    for (const room of this.#rooms.values()) this.#due(room)
    const caughtUp = this.#catchUp.kick()
    if (role === 'subscriber') await caughtUp
  }

  /** One attempt at catching every room up; `false` while a connection is not ready. */
  async #catchUpAll (): Promise<boolean> {
    // Listening again needs only the subscriber: messages held meanwhile may show that nothing was missed.
    if (this.#resubscribe && this.#connections.listening) await this.#subscribeAll()
    const due = [...this.#rooms].filter(([, room]) => room.held !== null)
    if (due.length === 0 && !this.#resubscribe) return true
    if (!this.#connections.ready || !this.#connections.listening) return false
    const results = await Promise.allSettled(due.map(async ([name, room]) => await this.#fill(name, room)))
    const failed = results.find((result) => result.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return !this.#resubscribe && ![...this.#rooms.values()].some((room) => room.held !== null)
  }

  async #subscribeAll (): Promise<void> {
    // Cleared first: a reconnect during the SUBSCRIBE sets it again.
    this.#resubscribe = false
    const channels = [...this.#rooms.keys()].map((room) => this.#keys.channel(room))
    try {
      await this.#connections.subscribeRooms(channels)
    } catch (err) {
      this.#resubscribe = true
      throw err
    }
  }

  /**
   * Delivers from the stream what the room's members missed, then what
   * pub/sub brought meanwhile. When the stream no longer holds all of it, or
   * the room's epoch changed (Redis lost it), the room is reset instead: its
   * members get the latest history, and live delivery goes on from there.
   */
  async #fill (name: string, room: Listening): Promise<void> {
    const pending = room.pending
    const { complete, page } = await this.#since(name, room.offset)
    // Left meanwhile, or caught up by pub/sub alone.
    if (this.#rooms.get(name) !== room || room.held === null) return
    if (complete && page.epoch === room.epoch) {
      for (const message of page.messages) this.#deliver(name, room, message, page.epoch, null)
    } else {
      // A room still subscribing has no members who could have missed anything: they read their history after this.
      if (room.epoch !== null) this.#node?.reset(name)
      room.epoch = page.epoch
      room.offset = page.offset
    }
    // Another reconnect meanwhile: what is held may follow a new gap.
    if (room.pending === pending) this.#release(name, room, false)
  }

  close (): void {
    this.#catchUp.close()
    this.#node = null
    this.#rooms.clear()
  }
}
