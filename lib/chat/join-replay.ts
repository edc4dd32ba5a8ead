import type { Broker } from '../broker/broker.js'
import type { PresencePage } from '../broker/presence.js'
import { CloseCode } from '../close-codes.js'
import { encodeJoined, encodeMessage } from '../protocol/codec.js'
import type { ChatMessage, JoinedFrame, Since } from '../protocol/wire.js'
import type { Stats } from '../stats.js'
import type { HistoryPage } from '../stores/history-store.js'
import type { Connection } from '../transport/connection.js'
import type { Batch } from './batch.js'
import type { Holding } from './fanout.js'
import type { ReadState } from './reads.js'

// Live messages that arrive while a join replays history are held back so
// they follow the replay in order; a client whose hold fills up this far
// cannot keep up and is better off reconnecting with `since`.
export const MAX_HELD_PER_ROOM = 1024

/** What a socket holds for one room while its `joined` is on its way; a later hold of the room replaces it. */
export type Held = Array<ChatMessage | string>

/** What a join replays: the page, and whether it continues the client's `since` without a gap. */
export interface Replay {
  page: HistoryPage
  recovered: boolean
}

/**
 * The history half of a join (and of a reset, which is a join the server
 * starts): live messages for the room are held back from the socket while
 * its history is read, then it gets `joined` with the replay, and after it
 * whatever was held that the replay did not have. So a client sees every
 * offset once, in order.
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

  /**
   * From now on, live messages for `room` are held back from `conn`. A
   * begin while another is still replaying supersedes it: only the latest
   * one's `joined` is sent, since its read is the more recent.
   */
  begin (conn: Connection, room: string): Held {
    return conn.hold(room)
  }

  /** Whether `held` (from {@link begin}) is still what `conn` holds for `room`. */
  current (conn: Connection, room: string, held: Held): boolean {
    return conn.held(room) === held
  }

  /** Holds a batch back from `conn` while its join replays (but its signals, which are not replayed); past the cap the socket is closed with 1013. */
  hold (conn: Connection, held: Array<ChatMessage | string>, batch: Batch): void {
    for (const entry of batch.entriesFor(conn, false)) {
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

  /** Stops holding without sending anything (the join failed), unless a later begin holds the room now. */
  abandon (conn: Connection, room: string, held: Held): void {
    if (this.current(conn, room, held)) conn.release(room)
  }

  /**
   * Sends `joined`, listing the users of `presence`'s page and carrying the
   * user's read position (`reads`), and then what
   * was held that the replay did not have; returns whether it did. Nothing
   * is sent when the socket stopped holding meanwhile (it closed or left) or
   * a later begin superseded this one.
   * The frame takes at most half of what the socket may still have waiting,
   * so the messages after it have room too.
   */
  finish (conn: Connection, room: string, held: Held, replay: Replay, presence: PresencePage, reads: ReadState): boolean {
    if (!this.current(conn, room, held)) return false
    conn.release(room)
    if (!conn.inRoom(room)) return false
    const { page, recovered } = replay
    const { users, count, next } = presence
    const frame: JoinedFrame = { type: 'joined', room, epoch: page.epoch, offset: page.offset, recovered, history: page.messages, users, count, read: reads.read, unread: reads.unread }
    if (next !== undefined) frame.next = next
    const direct = conn.directWith(room)
    // Present, the other user's name is current; otherwise it is the last one recorded.
    if (direct !== undefined) frame.with = users.find((user) => user.id === direct.id) ?? direct
    conn.sendRaw(encodeJoined(frame, Math.floor(conn.writeBudget / 2)))
    for (const item of held) {
      if (typeof item === 'string') conn.sendRaw(item)
      else if (item.offset > page.offset && conn.sendRaw(encodeMessage(item))) this.#stats.deliveriesOut++
    }
    return true
  }
}
