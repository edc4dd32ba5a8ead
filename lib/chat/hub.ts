import type { Broker, BrokerNode, PublishResult } from '../broker/broker.js'
import type { PresenceNode, PresencePage } from '../broker/presence.js'
import { CloseCode } from '../close-codes.js'
import { FST_CHAT_CLOSED } from '../errors.js'
import { defaults } from '../options.js'
import type { ChatMessage, LeftFrame, MembersRequest, Since, User } from '../protocol/wire.js'
import type { NewMessage } from '../stores/history-store.js'
import { channels } from '../stats.js'
import type { Stats } from '../stats.js'
import type { Connection } from '../transport/connection.js'
import type { Connections } from '../transport/connections.js'
import { Fanout } from './fanout.js'
import { JoinReplay } from './join-replay.js'
import type { Held, Replay } from './join-replay.js'
import { Reads } from './reads.js'
import type { ReadState } from './reads.js'
import type { PresenceTracker } from './presence-tracker.js'
import { Roster } from './roster.js'
import { Rooms } from './rooms.js'
import { SignalRelay } from './signals.js'
import type { Room } from './rooms.js'

// A reset whose read of the room fails is tried again after each of these
// waits: with Redis, the connection that reads can come back a moment after
// the subscriber that brought the new epoch. After the last, the sockets are
// closed with 1013 rather than left on an epoch that is gone: their clients
// reconnect (spread by their own backoff, maybe to a healthier server) and
// rejoin with `since`, which the server answers with `recovered: false`.
export const RESET_RETRY_MS: readonly number[] = [250, 1000, 4000]

export { MAX_SIGNALS_IN_FLIGHT } from './signals.js'

/** What the hub is built from. */
export interface HubParts {
  broker: Broker
  presence: PresenceTracker
  connections: Connections
  stats: Stats
  historySize: number
  maxRoomsPerClient: number
  /** Users listed in a `joined`, and a `members` page's default size. @default defaults.presenceListMax */
  presenceListMax?: number
  /** Above this many users, a room's members get `occupancy` instead of presence events. @default defaults.presenceEventsMax */
  presenceEventsMax?: number
  /** Least time between two `occupancy` frames of one room. @default defaults.occupancyIntervalMs */
  occupancyIntervalMs?: number
  /** Waits before each retry of a reset's read. @default RESET_RETRY_MS */
  resetRetryMs?: readonly number[]
}

/**
 * Coordinates one server's chat: sockets joining and leaving rooms, messages
 * going out through the broker and coming back to be written, and presence.
 * The work itself is done by the parts: {@link Rooms}, {@link Fanout},
 * {@link JoinReplay}, {@link PresenceTracker}, {@link Roster},
 * {@link SignalRelay} and {@link Connections}.
 */
export class Hub {
  readonly rooms = new Rooms<Connection>()
  /** Users' read positions: `read` frames, and what `joined` carries. */
  readonly reads: Reads
  /** Signals: sent through the broker, written to the members here. */
  readonly signals: SignalRelay
  readonly #broker: Broker
  readonly #presence: PresenceTracker
  readonly #connections: Connections
  readonly #stats: Stats
  readonly #replay: JoinReplay
  readonly #fanout: Fanout
  readonly #roster: Roster
  readonly #maxRooms: number
  readonly #resetRetryMs: readonly number[]
  // Retries of resets, cleared on close.
  readonly #timers = new Set<NodeJS.Timeout>()
  #closed = false

  constructor (parts: HubParts) {
    this.#broker = parts.broker
    this.#presence = parts.presence
    this.#connections = parts.connections
    this.#stats = parts.stats
    this.#maxRooms = parts.maxRoomsPerClient
    this.#resetRetryMs = parts.resetRetryMs ?? RESET_RETRY_MS
    this.#replay = new JoinReplay(parts.broker, parts.historySize, parts.stats)
    this.reads = new Reads(parts.broker, parts.connections, parts.historySize)
    this.#fanout = new Fanout(parts.stats, this.#replay)
    this.signals = new SignalRelay(parts.broker, parts.stats, this.rooms, this.#fanout)
    this.#roster = new Roster({
      presence: parts.presence,
      fanout: this.#fanout,
      room: (name) => this.#closed ? undefined : this.rooms.get(name),
      listMax: parts.presenceListMax ?? defaults.presenceListMax,
      eventsMax: parts.presenceEventsMax ?? defaults.presenceEventsMax,
      intervalMs: parts.occupancyIntervalMs ?? defaults.occupancyIntervalMs
    })
  }

  get closed (): boolean {
    return this.#closed
  }

  /** Whether more is being sent than this server can write out. */
  get congested (): boolean {
    return this.#fanout.congested
  }

  /** What the broker and presence call back into. */
  readonly node: BrokerNode & PresenceNode = {
    deliver: (message, exclude) => this.#deliver(message, exclude),
    reset: (room) => this.#reset(room),
    signal: (frame, exclude) => this.signals.deliver(frame, exclude),
    presence: (event) => this.#roster.event(event),
    read: (room, userId, offset, exclude) => { if (!this.#closed) this.reads.moved(room, userId, offset, exclude) }
  }

  /** Stores a message and fans it out through the broker; every server delivers it. */
  async publish (message: NewMessage, exclude: string | null): Promise<PublishResult> {
    if (this.#closed) throw new FST_CHAT_CLOSED()
    const result = await this.#broker.publish(message, exclude)
    if (channels.message.hasSubscribers && !result.duplicate) {
      const { room, offset, from } = result.message
      channels.message.publish({ room, offset, from })
    }
    return result
  }

  /** The entry at `offset` in `room`, or `null` when there is none or it is no longer kept. */
  async entry (room: string, offset: number): Promise<ChatMessage | null> {
    return await this.#broker.entry(room, offset)
  }

  add (conn: Connection): void {
    this.#connections.add(conn)
  }

  /** Forgets a closed socket and takes it out of its rooms. */
  remove (conn: Connection): void {
    if (!this.#connections.delete(conn)) return
    conn.stopExpiry()
    for (const room of conn.roomNames()) this.#removeMember(conn, room)
    conn.clearRooms()
    conn.release()
  }

  /** The name of user `id` now, if they have a socket on this server. */
  nameOf (id: string): string | undefined {
    return this.#connections.ofUser(id)[0]?.name
  }

  /** Whether `conn` is still open here: a join queued behind its close must not add it back. */
  has (conn: Connection): boolean {
    return this.#connections.has(conn)
  }

  /**
   * Joins `conn` to `room` (again, if it is already in) and answers `joined`
   * with the replay after `since`, or the latest history. `direct`: the
   * other user, when `room` is their direct room.
   */
  async join (conn: Connection, room: string, since?: Since, direct?: User): Promise<void> {
    if (!this.has(conn)) return
    const isNew = !conn.inRoom(room)
    if (isNew && conn.roomCount >= this.#maxRooms) {
      conn.sendError('too_many_rooms', `a client may be in at most ${this.#maxRooms} rooms`, undefined, room)
      return
    }
    // Hold live messages from now on: the replay below may or may not have them.
    const held = this.#replay.begin(conn, room)
    let replay
    let users
    let reads
    try {
      const { ready } = isNew ? this.#addMember(conn, room) : this.rooms.get(room) as { ready: Promise<void> }
      if (direct !== undefined) conn.setDirect(room, direct)
      await ready
      await conn.announced(room)
      replay = await this.#replay.read(room, since)
      users = await this.#roster.page(room)
      reads = await this.reads.joining(conn, room, replay.page, replay.recovered)
    } catch (err) {
      conn.request.log.error({ err, room }, 'fastify-chat: join failed, the adapter or store is unavailable')
      this.#replay.abandon(conn, room, held)
      if (isNew && conn.removeRoom(room)) this.#removeMember(conn, room)
      conn.sendError('unavailable', 'the room is unavailable right now, try joining again', undefined, room)
      return
    }
    // Messages still in the room's batch go to the held ones (and are
    // dropped there if the replay has them), not after the joined frame.
    const joined = this.rooms.get(room)
    if (joined === undefined) {
      this.#replay.abandon(conn, room, held)
      return
    }
    this.#fanout.flushMessages(joined)
    this.#finish(joined, conn, held, replay, users, reads)
  }

  /**
   * Whether `conn` was in `room`. `removed`: the app took it out (the
   * client is told, with the app's message if any); `silent`: it is told
   * otherwise (a refused join).
   */
  leave (conn: Connection, room: string, how: { removed?: { message?: string }, silent?: boolean } = {}): boolean {
    if (!conn.inRoom(room)) return false
    // What the room sent before the leave still reaches the socket, before `left`.
    this.#fanout.flushMessages(this.rooms.get(room))
    conn.removeRoom(room)
    conn.release(room)
    this.#removeMember(conn, room)
    if (how.silent === true) return true
    const frame: LeftFrame = { type: 'left', room }
    if (how.removed !== undefined) {
      frame.reason = 'removed'
      if (how.removed.message !== undefined) frame.message = how.removed.message
    }
    conn.send(frame)
    return true
  }

  /** Answers a member's `members` with a page of the room's users. */
  members (conn: Connection, request: MembersRequest): Promise<void> {
    return this.#roster.members(conn, request)
  }

  rename (conn: Connection, name: string): void {
    this.#roster.rename(conn, name)
  }

  /** Counts a message refused because the server is congested. */
  shed (conn: Connection): void {
    this.#stats.drop('overloaded', conn.request)
  }

  /**
   * Closes every socket with `code` (each terminated after `closeTimeout`),
   * once what was sent before has gone out; users still in their grace
   * period are announced as gone.
   */
  async close (code: number, reason: string): Promise<void> {
    this.#fanout.flush()
    this.signals.close()
    this.#closed = true
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    this.#roster.close()
    this.#presence.close()
    await this.#connections.closeAll(code, reason)
  }

  #deliver (message: ChatMessage, exclude: string | null): void {
    const room = this.rooms.get(message.room)
    if (room === undefined || this.#closed) return
    this.#fanout.message(room, message, exclude)
  }

  /** The room's history changed under this server: every local member gets a fresh `joined`. */
  #reset (name: string): void {
    const room = this.rooms.get(name)
    if (room === undefined || this.#closed) return
    // What was queued before the change goes out first, under the epoch the members know.
    this.#fanout.reset(room)
    const holds = [...room.members].map((conn) => ({ conn, held: this.#replay.begin(conn, name) }))
    // It handles its own failures (retries, then closes the sockets).
    this.#rejoin(name, holds, 0).catch(() => {})
  }

  /**
   * Sends each of `holds` a `joined` of `name` with the latest history, and
   * no presence event (nobody came or went). A failed read is retried after
   * each of resetRetryMs, then the sockets still waiting are closed with 1013.
   */
  async #rejoin (name: string, holds: Array<{ conn: Connection, held: Held }>, attempt: number): Promise<void> {
    let read: [Replay, PresencePage]
    try {
      read = await Promise.all([this.#replay.read(name, undefined), this.#roster.page(name)])
    } catch (err) {
      // Those that left, closed or rejoined meanwhile are no longer waiting for this one.
      const waiting = holds.filter(({ conn, held }) => this.#replay.current(conn, name, held))
      if (waiting.length === 0 || this.#closed) return
      const wait = this.#resetRetryMs[attempt]
      const { log } = waiting[0].conn.request
      if (wait === undefined) {
        log.error({ err, room: name }, 'fastify-chat: could not reset a room whose history changed; closing its sockets so they resume')
        for (const { conn } of waiting) conn.close(CloseCode.TRY_AGAIN_LATER, 'room history changed: reconnect and resume with since').catch(() => {})
        return
      }
      log.warn({ err, room: name }, 'fastify-chat: could not read a room whose history changed; retrying')
      const timer = setTimeout(() => {
        this.#timers.delete(timer)
        this.#rejoin(name, waiting, attempt + 1).catch(() => {})
      }, wait)
      this.#timers.add(timer)
      return
    }
    const room = this.rooms.get(name)
    if (room === undefined || this.#closed) return
    this.#fanout.flushMessages(room)
    const [replay, users] = read
    for (const { conn, held } of holds) this.#finish(room, conn, held, replay, users, this.reads.rejoining(conn, name, replay.page))
  }

  /** Sends `conn` its `joined`; what the replay had does not reach it again live. */
  #finish (room: Room<Connection>, conn: Connection, held: Held, replay: Replay, users: PresencePage, reads: ReadState): void {
    if (this.#replay.finish(conn, room.name, held, replay, users, reads)) this.#fanout.floor(room, conn, replay.page.offset)
  }

  /** Adds a member locally; the first member subscribes this server, the user's first socket announces the join. */
  #addMember (conn: Connection, name: string): { ready: Promise<void> } {
    const { room, firstOfUser } = this.rooms.add(conn, name, async (room) => await this.#broker.subscribe(room))
    this.#fanout.joined(room, conn)
    conn.addRoom(name)
    if (firstOfUser) {
      const announced = this.#presence.arrived(name, { id: conn.id, name: conn.name })
      if (announced !== null) conn.announcing(name, announced)
    }
    return room
  }

  #removeMember (conn: Connection, name: string): void {
    const removed = this.rooms.remove(conn, name)
    if (removed === null) return
    if (removed.lastOfUser) this.#presence.departed(name, { id: conn.id, name: conn.name })
    if (removed.emptied) {
      this.#roster.forget(name)
      this.#broker.unsubscribe(name).catch((err: unknown) => conn.request.log.warn({ err }, 'fastify-chat: unsubscribe failed'))
    }
  }
}
