import type { FastifyBaseLogger } from 'fastify'
import type { Adapter, AdapterNode, PresenceEvent, PublishResult } from '../broker/adapter.js'
import { CloseCode } from '../close-codes.js'
import { Delivery } from '../transport/connection.js'
import type { Connection } from '../transport/connection.js'
import { FST_CHAT_CLOSED, FST_CHAT_INVALID_ARGUMENT, FST_CHAT_INVALID_MESSAGE, FST_CHAT_INVALID_ROOM } from '../errors.js'
import { Batch } from './batch.js'
import { SYSTEM_USER } from '../options.js'
import type { ResolvedOptions } from '../options.js'
import { encodeMessage, fitsLength, isRoomName } from '../protocol/codec.js'
import { channels } from '../stats.js'
import type { ChatStats, Stats } from '../stats.js'
import type { HistoryPage, HistoryStore, NewMessage } from '../stores/history-store.js'
import type { ChatMessage, Since, User } from '../protocol/wire.js'

// Live messages that arrive while a join replays history are held back so
// they follow the replay in order; a client whose hold fills up this far
// cannot keep up and is better off reconnecting with `since`.
const MAX_HELD_PER_ROOM = 1024
const CONGESTION_WINDOW_MS = 20
// A room's batch is written out early once it holds this much, which bounds
// both the buffer built per batch and how far one write can take a socket
// past maxBufferedBytes.
const MAX_BATCH_BYTES = 64 * 1024
// Presence alone waits this long before it is written, so that a burst of
// joins (a deploy, a reconnect storm) reaches each member in a few writes
// instead of one per join: filling a room of n is then far from n² writes.
const PRESENCE_DELAY_MS = 20
// Messages are written at the end of the event-loop iteration that handled
// them, but no sooner than this after the previous write-out. Under steady
// traffic (messages from many senders, each in its own iteration) a socket
// then gets at most one write per interval, whatever the timing of arrivals;
// after a quiet spell the first message goes out in the same iteration.
const FLUSH_INTERVAL_MS = 1

interface Room {
  members: Set<Connection>
  /** Local sockets per user id: a user with two tabs is one user. */
  users: Map<string, number>
  /** Settles once this node receives the room's messages; every join waits for it. */
  ready: Promise<void>
  /** What is to be written to the members at the end of this event-loop iteration. */
  batch: Batch | null
}

/** Options of `app.chat.broadcast`. */
export interface BroadcastOptions {
  /** Sender shown to clients. @default { id: 'system', name: 'system' } */
  from?: User
}

/** Options of `app.chat.history`. */
export interface HistoryOptions {
  /** Only messages after this offset. */
  since?: number
  /** At most this many messages. @default historySize */
  limit?: number
}

/** The `app.chat` decorator. */
export interface Chat {
  /** Stores a message and sends it to every member of `room`, on every node; resolves to the stored message. */
  broadcast (room: string, text: string, opts?: BroadcastOptions): Promise<ChatMessage>
  /** Open chat sockets on this server. */
  readonly size: number
  /** Rooms with at least one member on this server. */
  rooms (): string[]
  /** Users in `room` on every node, each once. */
  presence (room: string): Promise<User[]>
  /** Stored messages of `room`, oldest first. */
  history (room: string, opts?: HistoryOptions): Promise<ChatMessage[]>
  /** Counters since the plugin registered. */
  stats (): ChatStats
}

/** Connection registry, room membership, presence and delivery for one server. */
export class Hub implements Chat {
  #opts: ResolvedOptions
  #store: HistoryStore
  #adapter: Adapter
  #stats: Stats
  #log: FastifyBaseLogger
  #connections = new Set<Connection>()
  #rooms = new Map<string, Room>()
  // Users whose last local socket left a room, announced only if they do not
  // come back within presenceGraceMs, so a reconnect does not flash leave/join.
  #leaving = new Map<string, { timer: NodeJS.Timeout, room: string, user: User }>()
  #closed = false
  #congestedAt = -Infinity
  // Rooms with a batch to write, and the flush at the end of this iteration.
  #pending: Array<[string, Room]> = []
  #flushing: NodeJS.Immediate | null = null
  #flushSoon: NodeJS.Timeout | null = null
  #flushedAt = -Infinity
  #presenceFlush: NodeJS.Timeout | null = null

  constructor (opts: ResolvedOptions, store: HistoryStore, adapter: Adapter, stats: Stats, log: FastifyBaseLogger) {
    this.#opts = opts
    this.#store = store
    this.#adapter = adapter
    this.#stats = stats
    this.#log = log
  }

  get size (): number {
    return this.#connections.size
  }

  get closed (): boolean {
    return this.#closed
  }

  stats (): ChatStats {
    return this.#stats.snapshot(this.size)
  }

  rooms (): string[] {
    return [...this.#rooms.keys()]
  }

  async presence (room: string): Promise<User[]> {
    if (!isRoomName(room)) throw new FST_CHAT_INVALID_ROOM(JSON.stringify(room))
    // Copies: the caller may change them, and adapters may hand out their own.
    return (await this.#adapter.presence(room)).map((user) => ({ id: user.id, name: user.name }))
  }

  async history (room: string, opts: HistoryOptions = {}): Promise<ChatMessage[]> {
    if (!isRoomName(room)) throw new FST_CHAT_INVALID_ROOM(JSON.stringify(room))
    const limit = opts.limit ?? this.#opts.historySize
    if (!Number.isSafeInteger(limit) || limit < 0) throw new FST_CHAT_INVALID_ARGUMENT('limit', 'must be an integer >= 0')
    if (opts.since === undefined) return (await this.#store.recent(room, limit)).messages
    const after = opts.since
    if (!Number.isSafeInteger(after) || after < 0) throw new FST_CHAT_INVALID_ARGUMENT('since', 'must be an integer >= 0')
    const page = await this.#store.since(room, after) ??
      await this.#store.recent(room, this.#opts.historySize)
    return page.messages.filter((m) => m.offset > after).slice(0, limit)
  }

  async broadcast (room: string, text: string, opts: BroadcastOptions = {}): Promise<ChatMessage> {
    if (!isRoomName(room)) throw new FST_CHAT_INVALID_ROOM(JSON.stringify(room))
    if (typeof text !== 'string' || text.trim() === '' || !fitsLength(text, this.#opts.maxMessageLength)) {
      throw new FST_CHAT_INVALID_MESSAGE(`text must be non-blank and at most ${this.#opts.maxMessageLength} characters`)
    }
    const from = opts.from ?? SYSTEM_USER
    const result = await this.publish({ room, ts: Date.now(), from: { id: from.id, name: from.name }, text }, null)
    return result.message
  }

  /** Stores a message and fans it out through the adapter; every node delivers it. */
  async publish (message: NewMessage, exclude: string | null): Promise<PublishResult> {
    if (this.#closed) throw new FST_CHAT_CLOSED()
    const result = await this.#adapter.publish(message, exclude)
    if (channels.message.hasSubscribers && !result.duplicate) {
      const { room, offset, from } = result.message
      channels.message.publish({ room, offset, from })
    }
    return result
  }

  /**
   * Sends a stored message to this server's members of its room: encoded
   * once, and written with everything else the room sends in this
   * iteration, framed once for all recipients.
   */
  deliver (message: ChatMessage, exclude: string | null): void {
    const room = this.#rooms.get(message.room)
    if (room === undefined || this.#closed) return
    this.#queue(message.room, room).add(encodeMessage(message), message, exclude, null)
    this.#scheduleFlush()
    this.#flushIfFull(message.room, room)
  }

  /** Counts a message refused because the server is congested. */
  shed (conn: Connection): void {
    this.#stats.drop('overloaded', conn.request)
  }

  /** Whether a recent broadcast found much of its room falling behind. */
  get congested (): boolean {
    return performance.now() - this.#congestedAt < CONGESTION_WINDOW_MS
  }

  /** Sends a presence event to this server's members of its room, except the user's own sockets. */
  presenceEvent (event: PresenceEvent): void {
    const room = this.#rooms.get(event.room)
    if (room === undefined || this.#closed) return
    const frame = event.previous === undefined
      ? { type: 'presence' as const, room: event.room, event: event.event, user: event.user }
      : { type: 'presence' as const, room: event.room, event: event.event, user: event.user, previous: event.previous }
    // Batched with the room's messages, so they keep their order with them.
    this.#queue(event.room, room).add(JSON.stringify(frame), null, null, event.user.id)
    this.#presenceFlush ??= setTimeout(this.#flush, PRESENCE_DELAY_MS)
    this.#flushIfFull(event.room, room)
  }

  /** What the adapter calls back into. */
  readonly node: AdapterNode = {
    deliver: (message, exclude) => this.deliver(message, exclude),
    presence: (event) => this.presenceEvent(event)
  }

  /** The room's batch, made on first use; the caller schedules its flush. */
  #queue (name: string, room: Room): Batch {
    if (room.batch !== null) return room.batch
    room.batch = new Batch()
    this.#pending.push([name, room])
    return room.batch
  }

  #scheduleFlush (): void {
    if (this.#flushing !== null || this.#flushSoon !== null) return
    const wait = this.#flushedAt + FLUSH_INTERVAL_MS - performance.now()
    // setImmediate runs after this iteration's I/O callbacks: every message
    // handled in this iteration is in the batch before it is written.
    if (wait <= 0) this.#flushing = setImmediate(this.#flush)
    else this.#flushSoon = setTimeout(this.#flush, wait)
  }

  #flushIfFull (name: string, room: Room): void {
    if (room.batch !== null && room.batch.bytes >= MAX_BATCH_BYTES) this.#flushRoom(name, room)
  }

  /** Writes every pending batch (presence too, if messages come first: they keep their order). */
  readonly #flush = (): void => {
    if (this.#flushing !== null) clearImmediate(this.#flushing)
    if (this.#flushSoon !== null) clearTimeout(this.#flushSoon)
    if (this.#presenceFlush !== null) clearTimeout(this.#presenceFlush)
    this.#flushing = null
    this.#flushSoon = null
    this.#presenceFlush = null
    this.#flushedAt = performance.now()
    const pending = this.#pending
    this.#pending = []
    for (const [name, room] of pending) this.#flushRoom(name, room)
  }

  /** Writes a room's batch: per member, one write of the batch's frames. */
  #flushRoom (name: string, room: Room): void {
    const { batch } = room
    if (batch === null) return
    room.batch = null
    let reached = 0
    let behind = 0
    let deliveries = 0
    // Asked once per batch: when it holds, each member's count needs no check of its own.
    const uniform = batch.uniform
    for (const conn of room.members) {
      const held = conn.held(name)
      if (held !== undefined) {
        this.#holdBatch(conn, held, batch)
        continue
      }
      const result = conn.deliver(batch)
      if (result === Delivery.NOT_WRITTEN) continue
      reached++
      deliveries += uniform ? batch.messages : batch.messagesFor(conn)
      if (result === Delivery.BEHIND) behind++
    }
    this.#stats.deliveriesOut += deliveries
    // More than an eighth of the room falling behind is not a few slow
    // readers (those are dropped one by one) but more traffic than this
    // server can write: new messages are refused until it clears.
    if (batch.messages > 0 && reached >= 8 && behind * 8 > reached) this.#congestedAt = performance.now()
  }

  /** Writes the room's batch now if it has messages, so what follows for one socket comes after them. */
  #flushMessages (name: string): void {
    const room = this.#rooms.get(name)
    if (room !== undefined && room.batch !== null && room.batch.messages > 0) this.#flushRoom(name, room)
  }

  /** Holds a batch back from `conn` while its join of the room replays history. */
  #holdBatch (conn: Connection, held: Array<ChatMessage | string>, batch: Batch): void {
    for (const entry of batch.entriesFor(conn)) {
      if (held.length >= MAX_HELD_PER_ROOM) {
        conn.close(CloseCode.TRY_AGAIN_LATER, 'too far behind: reconnect and resume with since')
        return
      }
      held.push(entry.message ?? entry.text)
    }
  }

  add (conn: Connection): void {
    this.#connections.add(conn)
  }

  /** Forgets a closed socket and tells its rooms it left. */
  remove (conn: Connection): void {
    if (!this.#connections.delete(conn)) return
    for (const room of conn.roomNames()) this.#removeMember(conn, room)
    conn.clearRooms()
    conn.release()
  }

  /**
   * Joins `conn` to `room` (again, if it is already in) and answers `joined`
   * with the replay: everything after `since` when the epoch matches and the
   * store still has it, the latest history otherwise.
   */
  async join (conn: Connection, roomName: string, since?: Since): Promise<void> {
    const isNew = !conn.inRoom(roomName)
    if (isNew && conn.roomCount >= this.#opts.maxRoomsPerClient) {
      conn.sendError('too_many_rooms', `a client may be in at most ${this.#opts.maxRoomsPerClient} rooms`)
      return
    }
    // Hold live messages from now on: the replay below may or may not have them.
    conn.hold(roomName)
    let page: HistoryPage | null = null
    let recovered = false
    let users: User[]
    try {
      const room = isNew ? this.#addMember(conn, roomName) : this.#rooms.get(roomName) as Room
      await room.ready
      await conn.announced(roomName)
      if (since !== undefined) {
        page = await this.#store.since(roomName, since.offset)
        recovered = page !== null && page.epoch === since.epoch
      }
      if (!recovered) page = await this.#store.recent(roomName, this.#opts.historySize)
      users = await this.#adapter.presence(roomName)
    } catch (err) {
      conn.request.log.error({ err, room: roomName }, 'fastify-chat: join failed, the adapter or store is unavailable')
      conn.release(roomName)
      if (isNew && conn.removeRoom(roomName)) this.#removeMember(conn, roomName)
      conn.sendError('unavailable', 'the room is unavailable right now, try joining again')
      return
    }
    // Messages still in the room's batch go to the held ones (and are
    // dropped there if the replay has them), not after the joined frame.
    this.#flushMessages(roomName)
    // The socket may have closed or left while the store answered.
    const held = conn.release(roomName)
    if (held === undefined || !conn.inRoom(roomName) || page === null) return
    conn.send({
      type: 'joined',
      room: roomName,
      epoch: page.epoch,
      offset: page.offset,
      recovered,
      history: page.messages,
      users
    })
    for (const item of held) {
      if (typeof item === 'string') conn.sendRaw(item)
      else if (item.offset > page.offset && conn.sendRaw(encodeMessage(item))) this.#stats.deliveriesOut++
    }
  }

  leave (conn: Connection, room: string): boolean {
    if (!conn.inRoom(room)) return false
    // What the room sent before the leave still reaches the socket, before `left`.
    this.#flushMessages(room)
    conn.removeRoom(room)
    conn.release(room)
    this.#removeMember(conn, room)
    conn.send({ type: 'left', room })
    return true
  }

  async rename (conn: Connection, name: string): Promise<void> {
    const previous = conn.name
    conn.name = name
    const user = { id: conn.id, name }
    for (const room of conn.roomNames()) this.#background(this.#adapter.rename(room, user, previous), 'rename')
    conn.send({ type: 'renamed', name, previous })
  }

  /** Adds a member locally; the first member subscribes the node, the user's first socket announces the join. */
  #addMember (conn: Connection, roomName: string): Room {
    let room = this.#rooms.get(roomName)
    if (room === undefined) {
      const ready = this.#adapter.subscribe(roomName)
      // Joins await it; this keeps a failure from also being an unhandled rejection.
      ready.catch(() => {})
      room = { members: new Set(), users: new Map(), ready, batch: null }
      this.#rooms.set(roomName, room)
    }
    room.members.add(conn)
    // What the room has pending was sent before this socket was in it.
    room.batch?.joined(conn)
    conn.addRoom(roomName)
    const sockets = room.users.get(conn.id) ?? 0
    room.users.set(conn.id, sockets + 1)
    if (sockets === 0) {
      const key = `${roomName}\n${conn.id}`
      const leaving = this.#leaving.get(key)
      if (leaving !== undefined) {
        // Back within the grace period: no leave, no join.
        clearTimeout(leaving.timer)
        this.#leaving.delete(key)
      } else {
        const joined = this.#adapter.join(roomName, { id: conn.id, name: conn.name })
        joined.catch(() => {})
        conn.announcing(roomName, joined)
      }
    }
    return room
  }

  #removeMember (conn: Connection, roomName: string): void {
    const room = this.#rooms.get(roomName)
    if (room === undefined || !room.members.delete(conn)) return
    const sockets = (room.users.get(conn.id) ?? 1) - 1
    if (sockets > 0) {
      room.users.set(conn.id, sockets)
    } else {
      room.users.delete(conn.id)
      this.#scheduleLeave(roomName, { id: conn.id, name: conn.name })
    }
    if (room.members.size === 0) {
      this.#rooms.delete(roomName)
      this.#background(this.#adapter.unsubscribe(roomName), 'unsubscribe')
    }
  }

  #scheduleLeave (room: string, user: User): void {
    if (this.#opts.presenceGraceMs === 0 || this.#closed) {
      this.#background(this.#adapter.leave(room, user), 'leave')
      return
    }
    const key = `${room}\n${user.id}`
    const timer = setTimeout(() => {
      this.#leaving.delete(key)
      this.#background(this.#adapter.leave(room, user), 'leave')
    }, this.#opts.presenceGraceMs)
    this.#leaving.set(key, { timer, room, user })
  }

  /** Runs adapter work nobody waits for; a failure is logged, never thrown. */
  #background (work: Promise<void>, what: string): void {
    work.catch((err: unknown) => this.#log.warn({ err }, `fastify-chat: presence ${what} failed`))
  }

  /** One heartbeat: terminates sockets that missed the previous ping, pings the rest. */
  heartbeat (): void {
    for (const conn of this.#connections) {
      if (!conn.alive) {
        this.#stats.drop('dead_peer', conn.request)
        conn.socket.terminate()
        continue
      }
      conn.alive = false
      if (conn.socket.readyState === conn.socket.OPEN) conn.socket.ping()
    }
  }

  /**
   * Closes every socket with `code` and waits for the close handshakes, at
   * most `timeoutMs`; sockets still open then are terminated. Users still in
   * their grace period are announced as gone.
   */
  async closeAll (code: number, reason: string, timeoutMs: number): Promise<void> {
    // What was sent before the shutdown goes out before the close frames.
    this.#flush()
    this.#closed = true
    for (const { timer, room, user } of this.#leaving.values()) {
      clearTimeout(timer)
      this.#background(this.#adapter.leave(room, user), 'leave')
    }
    this.#leaving.clear()
    const closing: Promise<void>[] = []
    for (const conn of this.#connections) {
      const { socket } = conn
      if (socket.readyState === socket.CLOSED) continue
      closing.push(new Promise((resolve) => socket.once('close', () => resolve())))
      socket.close(code, reason)
    }
    if (closing.length === 0) return
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
    const all = Promise.all(closing)
    await Promise.race([all, timedOut])
    clearTimeout(timer)
    for (const conn of this.#connections) conn.socket.terminate()
    // A terminated socket emits 'close' once its TCP socket is destroyed, a
    // tick later; waiting for it means no socket (or ws timer) outlives close.
    await all
  }
}
