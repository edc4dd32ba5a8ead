import type { Broker } from '../broker/broker.js'
import { encodeHistory } from '../protocol/codec.js'
import type { HistoryFrame, HistoryRequest } from '../protocol/wire.js'
import type { Connection } from '../transport/connection.js'
import type { Access } from './access.js'

/**
 * Answers `history` requests: a member reads back through a room's kept
 * messages a page at a time, each page one bounded read of the broker's
 * (never the room's whole history, never the read cache's shared pages).
 */
export class Scrollback {
  readonly #broker: Broker
  readonly #access: Access
  readonly #maxPage: number

  /** `maxPage`: the `maxHistoryPage` option. */
  constructor (broker: Broker, access: Access, maxPage: number) {
    this.#broker = broker
    this.#access = access
    this.#maxPage = maxPage
  }

  /**
   * Sends the page, or an error: `unknown_type` when the broker cannot page
   * back, `invalid_message` for a `limit` over `maxHistoryPage`,
   * `not_in_room` for a room the socket is not in, `forbidden` when
   * `authorize` refuses `history` (the socket stays in the room),
   * `unavailable` when the read fails.
   */
  async answer (conn: Connection, request: HistoryRequest): Promise<void> {
    const { room, before, limit, cid } = request
    if (this.#broker.before === undefined) {
      conn.sendError('unknown_type', 'unknown frame type "history": this server\'s history cannot be paged', cid)
      return
    }
    if (limit > this.#maxPage) {
      conn.sendError('invalid_message', `"limit" must be an integer from 1 to ${this.#maxPage}`, cid)
      return
    }
    if (!conn.inRoom(room)) {
      conn.sendError('not_in_room', `not in room "${room}"`, cid, room)
      return
    }
    let allowed = this.#access.allows(conn, 'history', room)
    if (typeof allowed !== 'boolean') allowed = await allowed
    if (!allowed) {
      conn.sendError('forbidden', `not allowed to read the history of room "${room}"`, cid, room)
      return
    }
    let page
    try {
      page = await this.#broker.before(room, before, limit)
    } catch (err) {
      conn.request.log.error({ err, room }, 'fastify-chat: history failed, the adapter or store is unavailable')
      conn.sendError('unavailable', 'the room\'s history is unavailable right now, ask again', cid, room)
      return
    }
    const frame: HistoryFrame = { type: 'history', room, epoch: page.epoch, messages: page.messages, more: page.more }
    if (cid !== undefined) frame.cid = cid
    conn.sendRaw(encodeHistory(frame, Math.floor(conn.writeBudget / 2)))
  }
}
