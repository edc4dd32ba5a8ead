import type { Broker } from '../broker/broker.js'
import { CloseCode } from '../close-codes.js'
import { encodeMessage } from '../protocol/codec.js'
import type { ChatMessage, Since, User } from '../protocol/wire.js'
import type { Stats } from '../stats.js'
import type { HistoryPage } from '../stores/history-store.js'
import type { Connection } from '../transport/connection.js'
import type { Batch } from './batch.js'
import type { Holding } from './fanout.js'

// Live messages that arrive while a join replays history are held back so
// they follow the replay in order; a client whose hold fills up this far
// cannot keep up and is better off reconnecting with `since`.
export const MAX_HELD_PER_ROOM = 1024

/** What a join replays: the page, and whether it continues the client's `since` without a gap. */
export interface Replay {
  page: HistoryPage
  recovered: boolean
}

/**
 * The history half of a join: live messages for the room are held back from
 * the socket while its history is read, then it gets `joined` with the
 * replay, and after it whatever was held that the replay did not have. So a
 * client sees every offset once, in order.
 */
export class JoinReplay implements Holding {
  readonly #broker: Broker
  readonly #historySize: number
  readonly #stats: Stats

  constructor (broker: Broker, historySize: number, stats: Stats) {
    this.#broker = broker
    this.#historySize = historySize
    this.#stats = stats
  }

  /** From now on, live messages for `room` are held back from `conn`. */
  begin (conn: Connection, room: string): void {
    conn.hold(room)
  }

  /** Holds a batch back from `conn` while its join replays; past the cap the socket is closed with 1013. */
  hold (conn: Connection, held: Array<ChatMessage | string>, batch: Batch): void {
    for (const entry of batch.entriesFor(conn)) {
      if (held.length >= MAX_HELD_PER_ROOM) {
        conn.close(CloseCode.TRY_AGAIN_LATER, 'too far behind: reconnect and resume with since').catch(() => {})
        return
      }
      held.push(entry.message ?? entry.text)
    }
  }

  /** Everything after `since` when the epoch matches and the broker still has it, the latest history otherwise. */
  async read (room: string, since: Since | undefined): Promise<Replay> {
    if (since !== undefined) {
      const page = await this.#broker.since(room, since.offset)
      if (page !== null && page.epoch === since.epoch) return { page, recovered: true }
    }
    return { page: await this.#broker.recent(room, this.#historySize), recovered: false }
  }

  /** Stops holding without sending anything (the join failed). */
  abandon (conn: Connection, room: string): void {
    conn.release(room)
  }

  /**
   * Sends `joined` and then what was held that the replay did not have.
   * Nothing is sent when the socket stopped holding meanwhile (it closed or left).
   */
  finish (conn: Connection, room: string, replay: Replay, users: User[]): void {
    const held = conn.release(room)
    if (held === undefined || !conn.inRoom(room)) return
    const { page, recovered } = replay
    conn.send({ type: 'joined', room, epoch: page.epoch, offset: page.offset, recovered, history: page.messages, users })
    for (const item of held) {
      if (typeof item === 'string') conn.sendRaw(item)
      else if (item.offset > page.offset && conn.sendRaw(encodeMessage(item))) this.#stats.deliveriesOut++
    }
  }
}
