import type { Broker } from '../broker/broker.js'
import { encodeHistory } from '../protocol/codec.js'
import type { HistoryFrame, HistoryRequest } from '../protocol/wire.js'
import type { Connection } from '../transport/connection.js'
import type { Access } from './access.js'
import { JoinGate } from './join-gate.js'

/**
 * History reads running at once on this server; the others wait their turn.
 * Each socket sends one request at a time, but thousands of sockets paging
 * together would each hold a page of up to `maxHistoryPage` messages read
 * from the store before it is written out: this bounds what those hold.
 */
export const MAX_CONCURRENT_READS = 32

/**
 * Answers `history` requests: a member reads back through a room's kept
 * messages a page at a time, each page one bounded read of the broker's
 * (never the room's whole history, never the read cache's shared pages).
 */
export class Scrollback {
  readonly #broker: Broker
  readonly #access: Access
  readonly #maxPage: number
  // The joins' first-come-first-served gate, for reads.
  readonly #reads = new JoinGate(MAX_CONCURRENT_READS)

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
    const read = this.#broker.before.bind(this.#broker)
    await this.#reads.run(async () => {
      let page
      try {
        page = await read(room, before, limit)
      } catch (err) {
        conn.request.log.error({ err, room }, 'fastify-chat: history failed, the adapter or store is unavailable')
        conn.sendError('unavailable', 'the room\'s history is unavailable right now, ask again', cid, room)
        return
      }
      const frame: HistoryFrame = { type: 'history', room, epoch: page.epoch, messages: page.messages, more: page.more }
      if (cid !== undefined) frame.cid = cid
      conn.sendRaw(encodeHistory(frame, Math.floor(conn.writeBudget / 2)))
    })
  }
}
