import type { PublishResult } from '../broker/broker.js'
import type { OutgoingMessage, ResolvedOptions } from '../options.js'
import { encodeMessage } from '../protocol/codec.js'
import { textProblem } from '../protocol/text.js'
import type { DeleteRequest, EditRequest, SendFrame } from '../protocol/wire.js'
import type { NewMessage } from '../stores/history-store.js'
import type { Connection } from '../transport/connection.js'
import type { Access } from './access.js'
import { Amendments } from './amendments.js'
import type { Hub } from './hub.js'
import { checkAppMeta } from './meta-schema.js'
import type { Moderation } from './moderation.js'
import { RecentCids } from './recent-cids.js'

/**
 * Publishes of one socket on their way to the broker at once. A sender does
 * not wait for each answer (through Redis, that would be one message per
 * round trip); past this many, its next frame waits for an answer, so what
 * one socket holds stays bounded.
 */
export const MAX_IN_FLIGHT = 64

// One socket's publishes awaiting their answer, and its frame queue's wait
// for a slot when they are MAX_IN_FLIGHT.
interface InFlight {
  count: number
  wake: (() => void) | null
}

/** What a message is sent with once `authorize` and `onMessage` let it through. */
interface Approved {
  text: string
  meta?: Record<string, unknown>
}

/** What publishing is built from. */
export interface PublishingParts {
  hub: Hub
  opts: ResolvedOptions
  access: Access
  moderation: Moderation
}

/**
 * Takes a client's message, edit or delete to the room's log: checks it,
 * asks `authorize` and `onMessage`, drops retries by cid, and issues the
 * publish without waiting for its answer.
 */
export class Publishing {
  #hub: Hub
  #opts: ResolvedOptions
  #access: Access
  #moderation: Moderation
  #amendments: Amendments
  #cids = new RecentCids()
  // Only sockets with publishes on their way have an entry: idle ones cost nothing here.
  readonly #inFlight = new WeakMap<Connection, InFlight>()

  constructor (parts: PublishingParts) {
    this.#hub = parts.hub
    this.#opts = parts.opts
    this.#access = parts.access
    this.#moderation = parts.moderation
    this.#amendments = new Amendments(async (room, offset) => await parts.hub.entry(room, offset), parts.access, parts.opts.editWindowMs)
  }

  /**
   * Checks a message and issues its publish; the answer (an echo for a
   * retry, or `unavailable`) is handled when it comes, while the socket's
   * next frames go on. Order per sender holds because publishes are issued
   * in frame order: the broker hands them on in call order (one Redis
   * connection, on which Redis runs scripts in order; or a store appending
   * in call order). An edit or a delete takes the same way, as the entry
   * of the room's log it becomes.
   */
  async send (conn: Connection, frame: SendFrame | EditRequest | DeleteRequest): Promise<void> {
    const { cid } = frame
    const room = frame.room ?? conn.firstRoom
    if (room === undefined || !conn.inRoom(room)) {
      conn.sendError('not_in_room', room === undefined ? 'join a room first' : `not in room "${room}"`, cid)
      return
    }
    // The codec checked its shape and size; the app's schema is checked here, where the options are.
    const meta = frame.type === 'delete' ? undefined : frame.meta
    if (meta !== undefined && this.#opts.metaSchema !== null) {
      const problem = this.#opts.metaSchema(meta)
      if (problem !== null) {
        conn.sendError('invalid_message', problem, cid)
        return
      }
    }
    if (this.#hub.congested) {
      // More is being sent than this server can write out: shed the new
      // message (the sender is told, and may retry) so latency and memory
      // stay bounded for everyone, instead of dropping every reader as slow.
      this.#hub.shed(conn)
      conn.sendError('overloaded', 'the server is overloaded: the message was not sent, try again shortly', cid)
      return
    }
    if (cid !== undefined) {
      const seen = this.#cids.get(room, cid)
      if (seen !== undefined) {
        // A retry of a message already taken: it is (or is being) broadcast
        // once. The sender gets the stored copy back; the client drops it
        // by offset if the first echo did arrive.
        if (seen !== 'pending' && this.#opts.echo) conn.sendRaw(encodeMessage(seen))
        return
      }
      this.#cids.set(room, cid, 'pending')
    }
    let approved: Approved | null = null
    try {
      approved = frame.type === 'message' ? await this.#approve(conn, room, frame) : await this.#approveAmendment(conn, frame)
      if (approved !== null) await this.#slot(conn)
    } finally {
      if (approved === null && cid !== undefined) this.#cids.delete(room, cid)
    }
    if (approved === null) return
    const entry: NewMessage = { room, ts: Date.now(), from: { id: conn.id, name: conn.name }, text: approved.text }
    if (cid !== undefined) entry.cid = cid
    if (approved.meta !== undefined) entry.meta = approved.meta
    if (frame.type !== 'message') {
      entry.type = frame.type
      entry.of = frame.of
    }
    const published = this.#hub.publish(entry, this.#opts.echo ? null : conn.key)
    published
      .then((result) => this.#published(conn, room, cid, result), (err: unknown) => this.#failed(conn, room, cid, err))
      .catch((err: unknown) => conn.request.log.error({ err }, 'fastify-chat: handling a publish\'s answer failed'))
      .finally(() => this.#settled(conn))
  }

  /** Asks `authorize`, then runs `onMessage`: the text and meta to send, or `null` when the sender was answered and nothing is sent. */
  async #approve (conn: Connection, room: string, frame: SendFrame): Promise<Approved | null> {
    const { cid } = frame
    let allowed = this.#access.allows(conn, 'publish', room)
    if (typeof allowed !== 'boolean') allowed = await allowed
    if (!allowed) {
      conn.sendError('forbidden', `not allowed to send to room "${room}"`, cid, room)
      return null
    }
    if (this.#opts.onMessage === null) return frame
    const message: OutgoingMessage = { room, text: frame.text }
    if (cid !== undefined) message.cid = cid
    if (frame.meta !== undefined) message.meta = frame.meta
    return await this.#runOnMessage(conn, message)
  }

  /** Checks an edit or a delete, then runs `onMessage` on an edit's text: the text to store ('' for a delete), or `null` when the sender was answered. */
  async #approveAmendment (conn: Connection, frame: EditRequest | DeleteRequest): Promise<Approved | null> {
    if (!await this.#amendments.allows(conn, frame)) return null
    if (frame.type === 'delete') return { text: '' }
    if (this.#opts.onMessage === null) return frame
    const { room, text, cid, of, meta } = frame
    const message: OutgoingMessage = { room, text, of }
    if (cid !== undefined) message.cid = cid
    if (meta !== undefined) message.meta = meta
    return await this.#runOnMessage(conn, message)
  }

  /** Takes one of the socket's MAX_IN_FLIGHT slots, waiting for an answer when none is free. */
  async #slot (conn: Connection): Promise<void> {
    const flight = this.#inFlight.get(conn)
    if (flight === undefined) {
      this.#inFlight.set(conn, { count: 1, wake: null })
      return
    }
    if (flight.count < MAX_IN_FLIGHT) {
      flight.count++
      return
    }
    // The frame queue runs one frame at a time, so one wait at most per socket.
    await new Promise<void>((resolve) => { flight.wake = resolve })
  }

  // An answered publish hands its slot straight to a waiting frame, so the count never dips and the entry is not dropped under it.
  #settled (conn: Connection): void {
    const flight = this.#inFlight.get(conn) as InFlight
    const wake = flight.wake
    if (wake !== null) {
      flight.wake = null
      wake()
      return
    }
    if (--flight.count === 0) this.#inFlight.delete(conn)
  }

  #published (conn: Connection, room: string, cid: string | undefined, { message: stored, duplicate }: PublishResult): void {
    if (cid !== undefined) this.#cids.set(room, cid, stored)
    // A retry that reached another node than the first attempt: the
    // adapter found the cid stored and sent nothing; answer as for a local retry.
    if (duplicate && this.#opts.echo) conn.sendRaw(encodeMessage(stored))
    else if (!duplicate) this.#reachOther(conn, room)
  }

  #failed (conn: Connection, room: string, cid: string | undefined, err: unknown): void {
    if (cid !== undefined) this.#cids.delete(room, cid)
    conn.request.log.error({ err }, 'fastify-chat: publish failed, the adapter or store is unavailable')
    conn.sendError('unavailable', 'the message could not be stored, send it again', cid)
  }

  /**
   * After a message in a direct room: the other user's sockets not in it,
   * on every server, are joined to it, so they get it (in their `joined`)
   * wherever they are connected.
   */
  #reachOther (conn: Connection, room: string): void {
    const other = conn.directWith(room)
    if (other === undefined) return
    this.#moderation.run({ type: 'add', room, userId: other.id, with: { id: conn.id, name: conn.name } })
      .catch((err: unknown) => conn.request.log.warn({ err, room }, 'fastify-chat: could not bring the other user into a direct room'))
  }

  /** Runs the user's hook; `null` means the sender has been answered and nothing is sent. */
  async #runOnMessage (conn: Connection, message: OutgoingMessage): Promise<OutgoingMessage | null> {
    const { cid } = message
    let result
    try {
      result = await (this.#opts.onMessage as NonNullable<ResolvedOptions['onMessage']>)({ ...message }, conn.view)
    } catch (err) {
      conn.request.log.error({ err }, 'fastify-chat: onMessage threw')
      conn.sendError('internal_error', 'the message could not be processed', cid)
      return null
    }
    if (result === false) {
      conn.sendError('rejected', 'the message was rejected', cid)
      return null
    }
    let approved: OutgoingMessage
    if (result === undefined || result === true) {
      approved = message
    } else {
      const text: unknown = (result as Partial<OutgoingMessage> | null)?.text
      if (typeof text !== 'string' || textProblem(text, this.#opts.maxMessageLength) !== null) {
        conn.request.log.error('fastify-chat: onMessage returned a message without valid text')
        conn.sendError('internal_error', 'the message could not be processed', cid)
        return null
      }
      // The room stays the one the sender is in: onMessage may change the text and meta, not the audience.
      // A hook written before meta existed returns no meta key: the sender's stays; `meta: undefined` removes it.
      const meta = Object.hasOwn(result as object, 'meta') ? (result as OutgoingMessage).meta : message.meta
      approved = { ...message, text }
      if (meta === undefined) delete approved.meta
      else approved.meta = meta
    }
    return this.#recheckMeta(conn, approved)
  }

  /**
   * The meta after `onMessage`, which may have set, replaced or changed it
   * in place, is checked again like the sender's; one that fails is the
   * app's bug, logged, and the sender gets `internal_error`.
   */
  #recheckMeta (conn: Connection, message: OutgoingMessage): OutgoingMessage | null {
    if (message.meta === undefined) return message
    const checked = checkAppMeta(message.meta, this.#opts.maxMetaBytes, this.#opts.metaSchema)
    if (!checked.ok) {
      conn.request.log.error({ problem: checked.message }, 'fastify-chat: onMessage returned a message whose meta is invalid')
      conn.sendError('internal_error', 'the message could not be processed', message.cid)
      return null
    }
    return { ...message, meta: checked.meta }
  }
}
