import type { FastifyRequest } from 'fastify'
import WebSocket from 'ws'
import { CloseCode } from '../close-codes.js'
import { closeSocket } from './close.js'
import { ClientView } from '../chat/client-view.js'
import type { TokenBucket } from './rate-limit.js'
import type { Stats } from '../stats.js'
import type { ChatMessage, ErrorCode, ErrorFrame, ServerFrame, User } from '../protocol/wire.js'
import { frameText } from '../protocol/frame.js'
import type { Batch } from '../chat/batch.js'
import { randomId } from '../random.js'
import { rawSocketOf } from './ws-internals.js'
import type { RawSocket } from './ws-internals.js'

// Timers take at most a signed 32-bit number of milliseconds; a later
// expiry is reached in steps.
const MAX_TIMER_MS = 2 ** 31 - 1

// Frames waiting to be handled per client. Past the high mark the server
// stops reading from that socket (TCP pushes back on the sender) until the
// queue is down to the low mark.
export const QUEUE_HIGH = 64
const QUEUE_LOW = 16

/** What a broadcast write did; BEHIND: written, but the socket already had `behindBytes` waiting. */
export const Delivery = Object.freeze({ NOT_WRITTEN: 0, WRITTEN: 1, BEHIND: 2 } as const)
export type DeliveryResult = typeof Delivery[keyof typeof Delivery]

/** What every connection of one plugin instance shares. */
export interface ConnectionContext {
  maxBufferedBytes: number
  /** Waiting bytes past which a socket counts as falling behind (for congestion). */
  behindBytes: number
  closeTimeout: number
  stats: Stats
}

/** One chat socket and what the hub knows about it. */
export class Connection {
  readonly id: string
  name: string
  // The rooms this socket is in: one name, or a Set once there are several.
  // Most sockets are in one room, and a Set costs about 200 bytes per socket.
  #rooms: string | Set<string> | null = null
  readonly request: FastifyRequest
  /** What `identify` returned as `data`. */
  readonly data: unknown
  readonly socket: WebSocket
  // Rooms whose join is replaying history, with the live messages (and
  // encoded presence frames) held back meanwhile; made on first use, since
  // most sockets of a big server are idle and every byte counts per socket.
  #held: Map<string, Array<ChatMessage | string>> | null = null
  // Presence announcements of this socket's joins still on their way through the adapter.
  #joining: Map<string, Promise<void>> | null = null
  // The other user of each direct room this socket is in; made on the first.
  #directs: Map<string, User> | null = null
  /** This socket's id (`clientId`): what moderation and `exclude` name, distinct even for two sockets of one user. */
  readonly key: string = randomId()
  /** When the session ends (milliseconds since the Unix epoch), or null when it does not. */
  expiresAt: number | null = null
  /** When the socket opened (milliseconds since the Unix epoch): a moderation command that arrives late spares sockets opened after it was sent. */
  readonly openedAt = Date.now()
  #expiry: NodeJS.Timeout | null = null
  /** Frames received but not yet handled; handled one at a time to keep their order. */
  queued = 0
  /** Cleared by each heartbeat, set by the pong: a socket still cleared at the next beat is dead. */
  alive = true
  /** Whether `identify` gave the id; a guest's (random, or from a resume token) keeps no read positions beyond this socket. */
  identified = false
  /** Whether ws itself refuses frames over `maxPayload` (otherwise each message is checked). */
  sizeChecked = false
  readonly bucket: TokenBucket | null
  #ctx: ConnectionContext
  // The stream under the socket, for pre-framed writes; null means go through ws.
  #raw: RawSocket | null
  #chain: Promise<void> | null = null
  #closing: Promise<void> | null = null
  // Made when a hook first asks for it.
  #view: ClientView | null = null

  constructor (socket: WebSocket, request: FastifyRequest, id: string, name: string, data: unknown, ctx: ConnectionContext, bucket: TokenBucket | null) {
    this.socket = socket
    this.data = data
    this.request = request
    this.id = id
    this.name = name
    this.#ctx = ctx
    this.bucket = bucket
    this.#raw = rawSocketOf(socket)
  }

  /**
   * Closes the socket with 4001 at `at` (milliseconds since the Unix epoch),
   * replacing any expiry set before; at once when `at` has passed.
   */
  expireAt (at: number): void {
    this.expiresAt = at
    if (this.#expiry !== null) clearTimeout(this.#expiry)
    this.#expiry = null
    const wait = at - Date.now()
    if (wait <= 0) {
      this.close(CloseCode.SESSION_EXPIRED, 'session expired').catch(() => {})
      return
    }
    this.#expiry = setTimeout(() => this.expireAt(at), Math.min(wait, MAX_TIMER_MS))
    // The socket keeps the process alive, not its expiry.
    this.#expiry.unref()
  }

  /** Stops the expiry timer: the socket closed. */
  stopExpiry (): void {
    if (this.#expiry !== null) clearTimeout(this.#expiry)
    this.#expiry = null
  }

  /** Remembers that `room` is the direct room of this user and `other`. */
  setDirect (room: string, other: User): void {
    (this.#directs ??= new Map()).set(room, { id: other.id, name: other.name })
  }

  /** The other user of direct room `room`, if this socket joined it as one. */
  directWith (room: string): User | undefined {
    return this.#directs?.get(room)
  }

  /** Remembers the presence announcement of this socket's join of `room`. */
  announcing (room: string, announced: Promise<void>): void {
    (this.#joining ??= new Map()).set(room, announced)
  }

  /** Waits for the announcement of this socket's join of `room`, if one is on its way. */
  async announced (room: string): Promise<void> {
    const announced = this.#joining?.get(room)
    if (announced === undefined) return
    try {
      await announced
    } finally {
      this.#joining?.delete(room)
      if (this.#joining?.size === 0) this.#joining = null
    }
  }

  /** Reads from the socket again once its queue is short. */
  resumeReading (): void {
    if (this.queued <= QUEUE_LOW && this.socket.isPaused) this.socket.resume()
  }

  /** Starts holding back live messages for `room`, in a new list (which replaces any list held for it before). */
  hold (room: string): Array<ChatMessage | string> {
    const held: Array<ChatMessage | string> = []
    this.#held ??= new Map()
    this.#held.set(room, held)
    return held
  }

  /** What is held for `room`, if its join is replaying (cheap when none is: the broadcast loop asks for every member). */
  held (room: string): Array<ChatMessage | string> | undefined {
    return this.#held?.get(room)
  }

  /** Stops holding for `room` (all rooms without one) and returns what was held. */
  release (room?: string): Array<ChatMessage | string> | undefined {
    if (this.#held === null) return undefined
    if (room === undefined) {
      this.#held = null
      return undefined
    }
    const held = this.#held.get(room)
    this.#held.delete(room)
    if (this.#held.size === 0) this.#held = null
    return held
  }

  /** Bytes that may still be written before the socket counts as too slow to read (and is closed with 1013). */
  get writeBudget (): number {
    const waiting = this.#raw === null ? this.socket.bufferedAmount : this.#raw.writableLength
    return this.#ctx.maxBufferedBytes - waiting
  }

  /** This client as hooks see it: read-only, without the socket. */
  get view (): ClientView {
    return (this.#view ??= new ClientView(this))
  }

  get roomCount (): number {
    const rooms = this.#rooms
    return rooms === null ? 0 : typeof rooms === 'string' ? 1 : rooms.size
  }

  inRoom (room: string): boolean {
    const rooms = this.#rooms
    return rooms === room || (typeof rooms === 'object' && rooms !== null && rooms.has(room))
  }

  /** The rooms this socket is in, in the order it joined them. */
  roomNames (): Iterable<string> {
    const rooms = this.#rooms
    return rooms === null ? [] : typeof rooms === 'string' ? [rooms] : [...rooms]
  }

  addRoom (room: string): void {
    const rooms = this.#rooms
    if (rooms === null) this.#rooms = room
    else if (typeof rooms === 'string') {
      if (rooms !== room) this.#rooms = new Set([rooms, room])
    } else rooms.add(room)
  }

  /** Whether it was in `room`. */
  removeRoom (room: string): boolean {
    if (this.#directs?.delete(room) === true && this.#directs.size === 0) this.#directs = null
    const rooms = this.#rooms
    if (rooms === room) {
      this.#rooms = null
      return true
    }
    if (typeof rooms !== 'object' || rooms === null || !rooms.delete(room)) return false
    if (rooms.size === 1) this.#rooms = rooms.values().next().value as string
    return true
  }

  clearRooms (): void {
    this.#rooms = null
    this.#directs = null
  }

  /** The room a message without `room` goes to. */
  get firstRoom (): string | undefined {
    const rooms = this.#rooms
    return rooms === null ? undefined : typeof rooms === 'string' ? rooms : rooms.values().next().value
  }

  /** Runs `task` after every task queued before it; a task never rejects the chain. */
  enqueue (task: () => Promise<void>): void {
    this.queued++
    this.#chain = (this.#chain ?? Promise.resolve()).then(task).finally(() => {
      // Dropped when idle: an idle socket should hold as little as possible.
      if (--this.queued === 0) this.#chain = null
    })
  }

  send (frame: ServerFrame): void {
    this.sendRaw(JSON.stringify(frame))
  }

  /**
   * Writes an encoded frame unless the socket is not open or already has
   * more than `maxBufferedBytes` waiting: a reader that slow is closed with
   * 1013 rather than buffered for without bound. Returns whether it wrote.
   */
  sendRaw (text: string): boolean {
    const { socket } = this
    if (socket.readyState !== WebSocket.OPEN) return false
    const raw = this.#raw
    const waiting = raw === null ? socket.bufferedAmount : raw.writableLength
    if (waiting > this.#ctx.maxBufferedBytes) {
      this.#slow(waiting)
      return false
    }
    try {
      // Framed here like broadcasts: one buffer and one write, without the
      // allocations of ws's generic send path.
      if (raw === null) {
        socket.send(text)
      } else {
        raw.write(frameText(text))
      }
      return true
    } catch (err) {
      this.request.log.warn({ err }, 'fastify-chat: send failed, dropping socket')
      socket.terminate()
      return false
    }
  }

  /**
   * The broadcast hot path: per recipient and batch, a state check, a
   * buffered-bytes check and one write of bytes framed once for everyone.
   * A socket already `behindBytes` behind gets the batch without its signals
   * (each such miss counted as `signal_shed` in `room`): they would only add
   * to what it has yet to read.
   */
  deliver (batch: Batch, room: string): DeliveryResult {
    const raw = this.#raw
    if (raw === null) {
      const shed = this.#shedsSignals(batch, this.socket.bufferedAmount, room)
      let wrote = false
      for (const entry of batch.entriesFor(this, !shed)) wrote = this.sendRaw(entry.text) || wrote
      return wrote ? Delivery.WRITTEN : Delivery.NOT_WRITTEN
    }
    if (this.socket.readyState !== WebSocket.OPEN) return Delivery.NOT_WRITTEN
    const waiting = raw.writableLength
    if (waiting > this.#ctx.maxBufferedBytes) {
      this.#slow(waiting)
      return Delivery.NOT_WRITTEN
    }
    const frames = this.#shedsSignals(batch, waiting, room)
      ? batch.framesFor(this, false)
      : batch.skips(this) ? batch.framesFor(this) : batch.frames
    if (frames === null) return Delivery.NOT_WRITTEN
    raw.write(frames)
    return waiting > this.#ctx.behindBytes ? Delivery.BEHIND : Delivery.WRITTEN
  }

  /** Whether this socket, `waiting` bytes behind, gets `batch` without its signals; a miss is counted. */
  #shedsSignals (batch: Batch, waiting: number, room: string): boolean {
    if (batch.signals === 0 || waiting <= this.#ctx.behindBytes) return false
    if (batch.signalsFor(this)) this.#ctx.stats.drop('signal_shed', this.request, room)
    return true
  }

  #slow (buffered: number): void {
    this.#ctx.stats.drop('slow_consumer', this.request, undefined, buffered)
    this.close(CloseCode.TRY_AGAIN_LATER, 'too slow: reconnect and resume with since')
  }

  /** An `error` frame; `room` names the room it is about, `cid` the frame it answers. */
  sendError (code: ErrorCode, message: string, cid?: string, room?: string): void {
    const frame: ErrorFrame = { type: 'error', code, message }
    if (room !== undefined) frame.room = room
    if (cid !== undefined) frame.cid = cid
    this.send(frame)
  }

  /** Set once the server closes this socket: frames still queued from it are dropped. */
  get closedByServer (): boolean {
    return this.#closing !== null
  }

  /** Closes with `code`, terminating after `closeTimeout`; resolves once the socket is closed. Closing twice is harmless. */
  async close (code: number, reason: string): Promise<void> {
    this.stopExpiry()
    this.#closing ??= closeSocket(this.socket, code, reason, this.#ctx.closeTimeout)
    await this.#closing
  }
}
