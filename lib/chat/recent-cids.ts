import type { ChatMessage } from '../protocol/wire.js'
import { CID_WINDOW } from '../stores/history-store.js'

/** What is known of a cid: still being stored (`pending`), or the message it produced. */
export type CidState = 'pending' | ChatMessage

/**
 * Remembers the latest client-chosen message ids (`cid`) per room that this
 * server took, so a message retried after an unclear send (the socket dropped
 * before the echo came back) is not broadcast twice. The store or adapter
 * remembers cids too, durably and for every server; this memory also covers
 * a retry that arrives while the first copy is still being stored, and spares
 * the round trip. Bounded both ways: the oldest cids of a room and the least
 * recently written rooms are forgotten first.
 */
export class RecentCids {
  #perRoom: number
  #maxRooms: number
  #rooms = new Map<string, Map<string, CidState>>()

  constructor (perRoom = CID_WINDOW, maxRooms = 1000) {
    this.#perRoom = perRoom
    this.#maxRooms = maxRooms
  }

  get (room: string, cid: string): CidState | undefined {
    return this.#rooms.get(room)?.get(cid)
  }

  set (room: string, cid: string, state: CidState): void {
    let cids = this.#rooms.get(room)
    if (cids === undefined) {
      cids = new Map()
      if (this.#rooms.size >= this.#maxRooms) this.#rooms.delete(this.#rooms.keys().next().value as string)
    } else {
      this.#rooms.delete(room)
    }
    this.#rooms.set(room, cids)
    cids.delete(cid)
    cids.set(cid, state)
    if (cids.size > this.#perRoom) cids.delete(cids.keys().next().value as string)
  }

  delete (room: string, cid: string): void {
    this.#rooms.get(room)?.delete(cid)
  }

  clear (): void {
    this.#rooms.clear()
  }
}
