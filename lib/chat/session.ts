import type { Connection } from '../transport/connection.js'
import type { Hub } from './hub.js'
import type { OutgoingMessage, ResolvedOptions } from '../options.js'
import { decodeClientFrame, encodeMessage } from '../protocol/codec.js'
import { textProblem } from '../protocol/text.js'
import { RecentCids } from './recent-cids.js'
import type { ChatMessage, ClientFrame, SendFrame } from '../protocol/wire.js'

/** Reads one client's frames and turns them into hub actions, answering bad ones with `error` frames. */
export class Session {
  #hub: Hub
  #opts: ResolvedOptions
  #cids = new RecentCids()

  constructor (hub: Hub, opts: ResolvedOptions) {
    this.#hub = hub
    this.#opts = opts
  }

  async handle (conn: Connection, raw: string): Promise<void> {
    // A client the server closed (flood, too slow, too large) has no say any more.
    if (conn.closedByServer) return
    const decoded = decodeClientFrame(raw, this.#opts.maxMessageLength)
    if (!decoded.ok) {
      conn.request.log.debug({ code: decoded.code }, 'fastify-chat: bad frame')
      conn.sendError(decoded.code, decoded.message, decoded.cid)
      return
    }
    await this.#dispatch(conn, decoded.frame)
  }

  async #dispatch (conn: Connection, frame: ClientFrame): Promise<void> {
    switch (frame.type) {
      case 'message':
        return await this.#send(conn, frame)
      case 'join':
        return await this.#hub.join(conn, frame.room, frame.since)
      case 'leave':
        if (!this.#hub.leave(conn, frame.room)) conn.sendError('not_in_room', `not in room "${frame.room}"`)
        return
      case 'name':
        this.#hub.rename(conn, frame.name)
    }
  }

  async #send (conn: Connection, frame: SendFrame): Promise<void> {
    const { cid } = frame
    const room = frame.room ?? conn.firstRoom
    if (room === undefined || !conn.inRoom(room)) {
      conn.sendError('not_in_room', room === undefined ? 'join a room first' : `not in room "${room}"`, cid)
      return
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
    let stored: ChatMessage | null = null
    try {
      stored = await this.#store(conn, room, frame.text, cid)
    } finally {
      if (cid !== undefined) {
        if (stored === null) this.#cids.delete(room, cid)
        else this.#cids.set(room, cid, stored)
      }
    }
  }

  /** Runs `onMessage`, then stores and publishes; `null` when the message was not sent. */
  async #store (conn: Connection, room: string, text: string, cid: string | undefined): Promise<ChatMessage | null> {
    let message: OutgoingMessage = cid === undefined ? { room, text } : { room, text, cid }
    if (this.#opts.onMessage !== null) {
      const changed = await this.#runOnMessage(conn, message)
      if (changed === null) return null
      message = changed
    }
    try {
      const { message: stored, duplicate } = await this.#hub.publish({
        room,
        ts: Date.now(),
        from: { id: conn.id, name: conn.name },
        text: message.text,
        ...(cid === undefined ? {} : { cid })
      }, this.#opts.echo ? null : conn.key)
      // A retry that reached another node than the first attempt: the
      // adapter found the cid stored and sent nothing; answer as for a local retry.
      if (duplicate && this.#opts.echo) conn.sendRaw(encodeMessage(stored))
      return stored
    } catch (err) {
      conn.request.log.error({ err }, 'fastify-chat: publish failed, the adapter or store is unavailable')
      conn.sendError('unavailable', 'the message could not be stored, send it again', cid)
      return null
    }
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
    if (result === undefined || result === true) return message
    const text: unknown = (result as Partial<OutgoingMessage> | null)?.text
    if (typeof text !== 'string' || textProblem(text, this.#opts.maxMessageLength) !== null) {
      conn.request.log.error('fastify-chat: onMessage returned a message without valid text')
      conn.sendError('internal_error', 'the message could not be processed', cid)
      return null
    }
    // The room stays the one the sender is in: onMessage may change the text, not the audience.
    return { ...message, text }
  }
}
