import type { Adapter } from './adapters/adapter.js'
import { CloseCode } from './close-codes.js'
import type { Connection } from './connection.js'
import { FST_CHAT_CLOSED, FST_CHAT_INVALID_ARGUMENT, FST_CHAT_INVALID_MESSAGE, FST_CHAT_INVALID_ROOM } from './errors.js'
import { SYSTEM_USER } from './options.js'
import type { ResolvedOptions } from './options.js'
import { Prepared } from './fanout.js'
import { encodeMessage, fitsLength, isRoomName } from './protocol.js'
import { channels } from './stats.js'
import type { ChatStats, Stats } from './stats.js'
import type { HistoryStore, NewMessage } from './stores/history-store.js'
import type { ChatMessage, ServerFrame, Since, User } from './wire.js'

// Live messages that arrive while a join replays history are held back so
// they follow the replay in order; a client whose hold fills up this far
// cannot keep up and is better off reconnecting with `since`.
const MAX_HELD_PER_ROOM = 1024

interface Room {
  members: Set<Connection>
  /** Sockets per user id: a user with two tabs is present once. */
  users: Map<string, { user: User, sockets: number }>
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
  /** Stores a message and sends it to every member of `room`; resolves to the stored message. */
  broadcast (room: string, text: string, opts?: BroadcastOptions): Promise<ChatMessage>
  /** Open chat sockets on this server. */
  readonly size: number
  /** Rooms with at least one member on this server. */
  rooms (): string[]
  /** Users in `room` on this server, each once. */
  presence (room: string): User[]
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
  #connections = new Set<Connection>()
  #rooms = new Map<string, Room>()
  #stats: Stats
  #closed = false

  constructor (opts: ResolvedOptions, store: HistoryStore, adapter: Adapter, stats: Stats) {
    this.#opts = opts
    this.#store = store
    this.#adapter = adapter
    this.#stats = stats
  }

  stats (): ChatStats {
    return this.#stats.snapshot(this.size)
  }

  get size (): number {
    return this.#connections.size
  }

  get closed (): boolean {
    return this.#closed
  }

  rooms (): string[] {
    return [...this.#rooms.keys()]
  }

  presence (room: string): User[] {
    const users = this.#rooms.get(room)?.users
    return users === undefined ? [] : [...users.values()].map(({ user }) => ({ ...user }))
  }

  async history (room: string, opts: HistoryOptions = {}): Promise<ChatMessage[]> {
    if (!isRoomName(room)) throw new FST_CHAT_INVALID_ROOM(JSON.stringify(room))
    const limit = opts.limit ?? this.#opts.historySize
    if (!Number.isSafeInteger(limit) || limit < 0) throw new FST_CHAT_INVALID_ARGUMENT('limit', 'must be an integer >= 0')
    if (opts.since !== undefined && (!Number.isSafeInteger(opts.since) || opts.since < 0)) {
      throw new FST_CHAT_INVALID_ARGUMENT('since', 'must be an integer >= 0')
    }
    if (opts.since === undefined) return (await this.#store.recent(room, limit)).messages
    const after = opts.since
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
    return await this.publish({ room, ts: Date.now(), from: { id: from.id, name: from.name }, text }, null)
  }

  /** Stores a message, then hands it to the adapter so every node delivers it. */
  async publish (message: NewMessage, exclude: string | null): Promise<ChatMessage> {
    if (this.#closed) throw new FST_CHAT_CLOSED()
    const stored = await this.#store.append(message)
    if (channels.message.hasSubscribers) channels.message.publish({ room: stored.room, offset: stored.offset, from: stored.from })
    await this.#adapter.publish(stored, exclude)
    return stored
  }

  /**
   * Sends a stored message to this server's members of its room: encoded
   * and framed once, whatever the number of recipients.
   */
  deliver (message: ChatMessage, exclude: string | null): void {
    const room = this.#rooms.get(message.room)
    if (room === undefined) return
    let prepared: Prepared | null = null
    let delivered = 0
    for (const conn of room.members) {
      if (conn.key === exclude) continue
      if (conn.pending.size !== 0 && this.#hold(conn, message)) continue
      prepared ??= new Prepared(encodeMessage(message))
      if (conn.deliver(prepared)) delivered++
    }
    this.#stats.deliveriesOut += delivered
  }

  /** Holds a live message back while `conn`'s join of its room replays history. */
  #hold (conn: Connection, message: ChatMessage): boolean {
    const held = conn.pending.get(message.room)
    if (held === undefined) return false
    if (held.length < MAX_HELD_PER_ROOM) held.push(message)
    else conn.close(CloseCode.TRY_AGAIN_LATER, 'too far behind: reconnect and resume with since')
    return true
  }

  add (conn: Connection): void {
    this.#connections.add(conn)
  }

  /** Forgets a closed socket and tells its rooms it left. */
  remove (conn: Connection): void {
    if (!this.#connections.delete(conn)) return
    for (const room of conn.rooms) this.#removeMember(conn, room)
    conn.rooms.clear()
    conn.pending.clear()
  }

  /**
   * Joins `conn` to `room` (again, if it is already in) and answers `joined`
   * with the replay: everything after `since` when the epoch matches and the
   * store still has it, the latest history otherwise.
   */
  async join (conn: Connection, roomName: string, since?: Since): Promise<void> {
    if (!conn.rooms.has(roomName)) {
      if (conn.rooms.size >= this.#opts.maxRoomsPerClient) {
        conn.sendError('too_many_rooms', `a client may be in at most ${this.#opts.maxRoomsPerClient} rooms`)
        return
      }
      this.#addMember(conn, roomName)
    }
    conn.pending.set(roomName, [])
    let page
    let recovered = false
    try {
      if (since !== undefined) {
        page = await this.#store.since(roomName, since.offset)
        recovered = page !== null && page.epoch === since.epoch
      }
      if (!recovered) page = await this.#store.recent(roomName, this.#opts.historySize)
    } catch (err) {
      conn.request.log.error({ err, room: roomName }, 'fastify-chat: history read failed')
      conn.pending.delete(roomName)
      if (conn.rooms.delete(roomName)) this.#removeMember(conn, roomName)
      conn.sendError('internal_error', 'could not read the room history, try joining again')
      return
    }
    // The socket may have closed or left while the store answered.
    const held = conn.pending.get(roomName)
    conn.pending.delete(roomName)
    if (held === undefined || !conn.rooms.has(roomName) || page == null) return
    conn.send({
      type: 'joined',
      room: roomName,
      epoch: page.epoch,
      offset: page.offset,
      recovered,
      history: page.messages,
      users: this.presence(roomName)
    })
    for (const message of held) {
      if (message.offset > page.offset && conn.sendRaw(encodeMessage(message))) this.#stats.deliveriesOut++
    }
  }

  leave (conn: Connection, room: string): boolean {
    if (!conn.rooms.delete(room)) return false
    conn.pending.delete(room)
    this.#removeMember(conn, room)
    conn.send({ type: 'left', room })
    return true
  }

  rename (conn: Connection, name: string): void {
    const previous = conn.name
    conn.name = name
    const user = { id: conn.id, name }
    for (const roomName of conn.rooms) {
      const room = this.#rooms.get(roomName) as Room
      const entry = room.users.get(conn.id)
      if (entry !== undefined) entry.user = user
      this.#toOthers(room, conn, { type: 'presence', room: roomName, event: 'rename', user, previous })
    }
    conn.send({ type: 'renamed', name, previous })
  }

  #addMember (conn: Connection, roomName: string): void {
    let room = this.#rooms.get(roomName)
    if (room === undefined) {
      room = { members: new Set(), users: new Map() }
      this.#rooms.set(roomName, room)
    }
    room.members.add(conn)
    conn.rooms.add(roomName)
    const entry = room.users.get(conn.id)
    if (entry !== undefined) {
      entry.sockets++
      return
    }
    const user = { id: conn.id, name: conn.name }
    room.users.set(conn.id, { user, sockets: 1 })
    this.#toOthers(room, conn, { type: 'presence', room: roomName, event: 'join', user })
  }

  #removeMember (conn: Connection, roomName: string): void {
    const room = this.#rooms.get(roomName)
    if (room === undefined || !room.members.delete(conn)) return
    const entry = room.users.get(conn.id)
    if (entry !== undefined && --entry.sockets === 0) {
      room.users.delete(conn.id)
      this.#toOthers(room, conn, { type: 'presence', room: roomName, event: 'leave', user: { id: conn.id, name: conn.name } })
    }
    if (room.members.size === 0) this.#rooms.delete(roomName)
  }

  #toOthers (room: Room, except: Connection, frame: ServerFrame): void {
    let data: string | null = null
    for (const conn of room.members) {
      if (conn === except || conn.id === except.id) continue
      data ??= JSON.stringify(frame)
      conn.sendRaw(data)
    }
  }

  /** One heartbeat: terminates sockets that missed the previous ping, pings the rest. */
  heartbeat (): void {
    for (const conn of this.#connections) {
      if (!conn.alive) {
        this.#stats.drop('dead_peer', conn.request.ip)
        conn.socket.terminate()
        continue
      }
      conn.alive = false
      if (conn.socket.readyState === conn.socket.OPEN) conn.socket.ping()
    }
  }

  /**
   * Closes every socket with `code` and waits for the close handshakes, at
   * most `timeoutMs`; sockets still open then are terminated.
   */
  async closeAll (code: number, reason: string, timeoutMs: number): Promise<void> {
    this.#closed = true
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
