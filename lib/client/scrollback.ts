import type { HistoryFrame, HistoryRequest, JoinedFrame } from '../protocol/wire.js'
import { checkRoom } from './checks.js'
import type { Emitter } from './emitter.js'
import { codedError, randomCid, Requests } from './requests.js'
import type { ChatEvents, HistoryError, HistoryQuery } from './types.js'

/** wire.ts's MAX_HISTORY_PAGE: the most messages a page may ask for, whatever the server allows. */
export const MAX_HISTORY_PAGE = 1000
/** How long a `history` request waits for its page. */
export const HISTORY_TIMEOUT_MS = 10_000

export function historyError (code: string, message: string): HistoryError {
  return codedError(code, message)
}

/** Where a room's scroll-back stands: the oldest offset shown, in which epoch, and whether older ones are kept. */
interface Edge {
  epoch: string
  oldest: number
  more: boolean
}

/**
 * Older pages of each room's history: the requests waiting for their page,
 * and per room the oldest offset this client holds, so `loadOlder` asks for
 * what comes before it. A page from another epoch than the room's latest
 * `joined` is refused: its offsets mean nothing next to what is shown.
 */
export class Scrollback {
  readonly #events: Emitter<ChatEvents>
  readonly #pages = new Requests<HistoryFrame>()
  readonly #edges = new Map<string, Edge>()

  constructor (events: Emitter<ChatEvents>) {
    this.#events = events
  }

  /** The request for a page of `room` before `before`, checked, with a fresh cid. */
  static request (room: string, { before, limit }: HistoryQuery): HistoryRequest {
    checkRoom(room)
    if (!Number.isSafeInteger(before) || before < 0) throw new TypeError('before must be a non-negative integer offset')
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY_PAGE) throw new TypeError(`limit must be an integer from 1 to ${MAX_HISTORY_PAGE}`)
    return { type: 'history', room, before, limit, cid: randomCid() }
  }

  /** A `joined` starts the room's edge at its oldest replayed message (or past its latest, with none). */
  onJoined (frame: JoinedFrame): void {
    const edge = this.#edges.get(frame.room)
    // A recovered rejoin in the same epoch keeps what was loaded already.
    if (edge !== undefined && edge.epoch === frame.epoch && frame.recovered) return
    const oldest = frame.history[0]?.offset ?? frame.offset + 1
    this.#edges.set(frame.room, { epoch: frame.epoch, oldest, more: oldest > 1 })
  }

  /** Whether older messages than those held may be kept by the server; `undefined` when not in `room`. */
  more (room: string): boolean | undefined {
    return this.#edges.get(room)?.more
  }

  async request (frame: HistoryRequest, write: (frame: HistoryRequest) => void): Promise<HistoryFrame> {
    const answer = this.#pages.wait(frame.cid as string, HISTORY_TIMEOUT_MS, () => historyError('timeout', 'no history page within 10 s'))
    write(frame)
    return await answer
  }

  /**
   * The page before the oldest message held in `room`, which then becomes
   * the oldest; a `history` event carries it. Resolves with whether older
   * ones are left. Rejects with `not_in_room` when no `joined` came, and with
   * `stale` when the room's epoch changed meanwhile (a `reset` told of it).
   */
  async loadOlder (room: string, limit: number, fetch: (query: HistoryQuery) => Promise<HistoryFrame>): Promise<boolean> {
    const edge = this.#edges.get(room)
    if (edge === undefined) throw historyError('not_in_room', `not in room ${room}`)
    if (!edge.more) return false
    const page = await fetch({ before: edge.oldest, limit })
    if (this.#edges.get(room) !== edge || page.epoch !== edge.epoch) throw historyError('stale', `room ${room} started over while the page was on its way`)
    const first = page.messages[0]
    if (first !== undefined && first.offset < edge.oldest) edge.oldest = first.offset
    edge.more = page.more && first !== undefined
    this.#events.emit('history', page)
    return edge.more
  }

  /** A `history` frame: the page of the request with its cid. */
  onHistory (frame: HistoryFrame): void {
    this.#pages.answer(frame.cid, frame)
  }

  /** Rejects the request an error frame answers; says whether there was one. */
  onError (cid: string | undefined, code: string, message: string): boolean {
    return this.#pages.answer(cid, historyError(code, message))
  }

  /** The socket dropped: no page will come. */
  failAll (): void {
    this.#pages.failAll(() => historyError('closed', 'the socket closed before the page came'))
  }

  forget (room: string): void {
    this.#edges.delete(room)
  }

  clear (): void {
    this.#edges.clear()
  }
}
