import type { DeleteRequest, EditRequest, SendFrame } from '../protocol/wire.js'

/** A frame that becomes an entry of a room's log: kept and resent by its cid until it comes back. */
export type Outgoing = SendFrame | EditRequest | DeleteRequest

/**
 * Messages not yet known to have arrived: queued while the connection is not
 * open, and in flight (sent on a socket, not yet seen back). If that socket
 * drops, the ones in flight go out again with the same cid, and the server's
 * cid memory keeps them single. Both are bounded by `max`.
 */
export class SendQueue {
  readonly max: number
  #queue: Outgoing[] = []
  #inFlight = new Map<string, Outgoing>()

  constructor (max?: number) {
    max ??= 100
    if (!Number.isInteger(max) || max < 0) throw new TypeError('maxQueue must be an integer >= 0')
    this.max = max
  }

  /** Keeps `frame` for the next socket; throws when `max` already wait. */
  hold (frame: Outgoing): void {
    if (this.#queue.length >= this.max) {
      throw new Error(`chat send queue is full (${this.max} messages waiting for the connection)`)
    }
    this.#queue.push(frame)
  }

  /** Notes `frame` as sent; the oldest in flight is forgotten past `max`, being the likeliest to have arrived. */
  sent (frame: Outgoing): void {
    this.#inFlight.set(frame.cid as string, frame)
    if (this.#inFlight.size > this.max) this.#inFlight.delete(this.#inFlight.keys().next().value as string)
  }

  /** The message `cid` came back (or was refused): no need to send it again. */
  settled (cid: string | undefined): void {
    if (cid !== undefined) this.#inFlight.delete(cid)
  }

  /** What a fresh socket sends, in order: the frames whose fate is unclear, then the queued ones (which leave the queue). */
  drain (): { unclear: Outgoing[], queued: Outgoing[] } {
    return { unclear: [...this.#inFlight.values()], queued: this.#queue.splice(0) }
  }

  clear (): void {
    this.#queue = []
    this.#inFlight.clear()
  }
}
