import type { Control } from '../broker/control.js'
import { CloseCode } from '../close-codes.js'
import type { Connection } from '../transport/connection.js'
import type { Access } from './access.js'
import { directRoom, isDirectRoom } from './direct.js'
import type { Hub } from './hub.js'
import type { Moderation } from './moderation.js'
import type { Scrollback } from './scrollback.js'
import type { ResolvedOptions } from '../options.js'
import { decodeClientFrame } from '../protocol/codec.js'
import { JoinGate } from './join-gate.js'
import { Publishing } from './publishing.js'
import type { ClientFrame, SignalFrame, SignalRequest, Since, User } from '../protocol/wire.js'
import { SignalGate } from './signals.js'

/** What a session is built from. */
export interface SessionParts {
  hub: Hub
  opts: ResolvedOptions
  access: Access
  control: Control
  moderation: Moderation
  scrollback: Scrollback
}

/** Reads one client's frames and turns them into hub actions, answering bad ones with `error` frames. */
export class Session {
  #hub: Hub
  #opts: ResolvedOptions
  #access: Access
  #control: Control
  #scrollback: Scrollback
  readonly #publishing: Publishing
  readonly #joins: JoinGate
  readonly #signals: SignalGate

  constructor (parts: SessionParts) {
    this.#hub = parts.hub
    this.#opts = parts.opts
    this.#access = parts.access
    this.#control = parts.control
    this.#scrollback = parts.scrollback
    this.#publishing = new Publishing(parts)
    this.#joins = new JoinGate(parts.opts.maxConcurrentJoins)
    this.#signals = new SignalGate(parts.opts.signals, parts.opts.signalRate)
  }

  async handle (conn: Connection, raw: string): Promise<void> {
    // A client the server closed (flood, too slow, too large) has no say any more.
    if (conn.closedByServer) return
    const decoded = decodeClientFrame(raw, this.#opts.maxMessageLength, this.#opts.maxMetaBytes)
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
      case 'edit':
      case 'delete':
        return await this.#publishing.send(conn, frame)
      case 'join':
        if (frame.with !== undefined) {
          const { with: other, since, cid } = frame
          return await this.#joins.run(async () => await this.#openDirect(conn, other, since, cid))
        }
        return await this.join(conn, frame.room, frame.since, frame.cid)
      case 'leave':
        if (!this.#hub.leave(conn, frame.room)) conn.sendError('not_in_room', `not in room "${frame.room}"`)
        return
      case 'name':
        this.#hub.rename(conn, frame.name)
        return
      case 'refresh':
        return await this.#refresh(conn, frame.token)
      case 'members':
        return await this.#hub.members(conn, frame)
      case 'history':
        return await this.#scrollback.answer(conn, frame)
      case 'signal':
        return await this.#signal(conn, frame)
      case 'read':
        if (!conn.inRoom(frame.room)) conn.sendError('not_in_room', `not in room "${frame.room}"`, undefined, frame.room)
        else this.#hub.reads.mark(conn, frame.room, frame.offset)
    }
  }

  /**
   * Joins `room` if `authorize` allows it (a direct room only for its two
   * users); a refusal sends `forbidden` and nothing of the room, and takes
   * the socket out of it if it was in. At most `maxConcurrentJoins` run at
   * once on this server; the others wait their turn.
   */
  async join (conn: Connection, room: string, since?: Since, cid?: string): Promise<void> {
    await this.#joins.run(async () => await this.#join(conn, room, since, cid))
  }

  async #join (conn: Connection, room: string, since: Since | undefined, cid: string | undefined): Promise<void> {
    // A socket that closed while its join waited for a turn (a client of a
    // reconnect storm that gave up) costs no authorize call and no history read.
    if (!this.#hub.has(conn)) return
    let direct: User | undefined
    if (isDirectRoom(room)) {
      let users
      try {
        users = await this.#control.pairOf(room)
      } catch (err) {
        conn.request.log.error({ err, room }, 'fastify-chat: join failed, the adapter is unavailable')
        conn.sendError('unavailable', 'the room is unavailable right now, try joining again', cid, room)
        return
      }
      direct = users?.find((user) => user.id !== conn.id)
      if (users === null || direct === undefined || !users.some((user) => user.id === conn.id)) {
        return this.#forbid(conn, room, cid)
      }
    }
    let allowed = this.#access.allows(conn, 'join', room)
    if (typeof allowed !== 'boolean') allowed = await allowed
    if (!allowed) return this.#forbid(conn, room, cid)
    await this.#hub.join(conn, room, since, direct)
  }

  /** Opens the direct room of this user and `other`: `authorize` is asked for `direct`, then it is joined. */
  async #openDirect (conn: Connection, other: string, since: Since | undefined, cid: string | undefined): Promise<void> {
    if (!this.#hub.has(conn)) return
    if (other === conn.id) {
      conn.sendError('invalid_message', '"with" names yourself: a direct conversation needs another user', cid)
      return
    }
    const room = directRoom(conn.id, other)
    let allowed = this.#access.allows(conn, 'direct', room, other)
    if (typeof allowed !== 'boolean') allowed = await allowed
    if (!allowed) return this.#forbid(conn, room, cid)
    let users
    try {
      await this.#control.pair(room, { id: conn.id, name: conn.name }, other)
      users = await this.#control.pairOf(room)
    } catch (err) {
      conn.request.log.error({ err, room }, 'fastify-chat: opening a direct room failed, the adapter is unavailable')
      conn.sendError('unavailable', 'the room is unavailable right now, try joining again', cid, room)
      return
    }
    // The pair has the other user's name once they opened it themselves; until then, a socket of theirs here may know it.
    const recorded = users?.find((user) => user.id === other && user.name !== other)
    const direct = recorded ?? { id: other, name: this.#hub.nameOf(other) ?? other }
    await this.#hub.join(conn, room, since, direct)
  }

  #forbid (conn: Connection, room: string, cid: string | undefined): void {
    // A socket refused a room it is in (its rights changed) is in it no more.
    this.#hub.leave(conn, room, { silent: true })
    conn.sendError('forbidden', `not allowed in room "${room}"`, cid, room)
  }

  /** Extends the session with the app's `refresh`, or closes it with 4001 when refused. */
  async #refresh (conn: Connection, token: string): Promise<void> {
    const refresh = this.#opts.refresh
    if (refresh === null) {
      conn.sendError('unknown_type', 'unknown frame type "refresh"')
      return
    }
    let result
    try {
      result = await refresh(token, conn.view)
    } catch (err) {
      conn.request.log.error({ err }, 'fastify-chat: refresh threw; the session keeps its expiry')
      conn.sendError('internal_error', 'the session could not be refreshed')
      return
    }
    if (result === false) {
      conn.close(CloseCode.SESSION_EXPIRED, 'session expired').catch(() => {})
      return
    }
    // Closed while the app decided: nothing is left to extend.
    if (conn.closedByServer || !this.#hub.has(conn)) return
    const expiresAt: unknown = (result as { expiresAt?: unknown } | null)?.expiresAt
    if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
      conn.request.log.error('fastify-chat: refresh returned neither false nor { expiresAt: number }')
      conn.sendError('internal_error', 'the session could not be refreshed')
      return
    }
    conn.expireAt(expiresAt)
    if (expiresAt > Date.now()) conn.send({ type: 'refreshed', expiresAt })
  }

  /**
   * Checks a signal and hands it to the room's other members (the sender's
   * other sockets included: they are other tabs). The limit is taken before
   * `authorize` is asked, so a flood costs the app no calls; over it, or
   * while the server is congested, the signal is dropped without an answer.
   * A refusal is answered with `forbidden` like a refused message.
   */
  async #signal (conn: Connection, request: SignalRequest): Promise<void> {
    const { room, name, cid } = request
    if (!this.#signals.accepts(name)) {
      conn.sendError('unknown_signal', `unknown signal "${name}"`, cid, room)
      return
    }
    if (!conn.inRoom(room)) {
      conn.sendError('not_in_room', `not in room "${room}"`, cid, room)
      return
    }
    if (!this.#signals.take(conn)) {
      this.#hub.signals.limited(conn, room)
      return
    }
    let allowed = this.#access.allows(conn, 'signal', room)
    if (typeof allowed !== 'boolean') allowed = await allowed
    if (!allowed) {
      conn.sendError('forbidden', `not allowed to signal in room "${room}"`, cid, room)
      return
    }
    const frame: SignalFrame = { type: 'signal', room, name, from: { id: conn.id, name: conn.name } }
    if (request.data !== undefined) frame.data = request.data
    this.#hub.signals.send(conn, frame)
  }
}
