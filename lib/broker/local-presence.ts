import type { User } from '../protocol/wire.js'
import type { PageRequest, Presence, PresenceNode, PresencePage } from './presence.js'

/** A user's place in a room's join order; `user` is null once they left. */
interface Entry {
  readonly seq: number
  user: User | null
}

/** One room: who is in it by id, and the same entries in join order. */
interface RoomIndex {
  readonly byId: Map<string, Entry>
  // Ascending by seq, so a cursor (a seq) is found by binary search. Leaves
  // only blank an entry; the array is compacted once the blanks outnumber
  // the users, so a leave costs O(1) amortized and a page skips few blanks.
  order: Entry[]
  blanks: number
  // The page from the start, as last handed out: every join into a big room
  // lists the same first users, and handing out the same (frozen) array lets
  // its encoding be reused. Dropped when it could have changed.
  first: { page: PresencePage, limit: number, lastSeq: number } | null
}

// Below this many blanks compaction is not worth a new array.
const MIN_COMPACT = 32
const SEQ = /^(0|[1-9]\d{0,15})$/

/**
 * Presence within one server: a join-ordered index per room, and every event
 * handed straight back. A page costs a binary search and the page itself,
 * whatever the room's size. The cursor is the sequence number of the last
 * user listed: users who joined before it are behind it, so one who leaves
 * between pages moves no one else across it.
 */
export class LocalPresence implements Presence {
  #node: PresenceNode | null = null
  readonly #rooms = new Map<string, RoomIndex>()
  #seq = 0

  start (node: PresenceNode): void {
    this.#node = node
  }

  async join (room: string, user: User): Promise<void> {
    let index = this.#rooms.get(room)
    if (index === undefined) this.#rooms.set(room, index = { byId: new Map(), order: [], blanks: 0, first: null })
    const stored = Object.freeze({ id: user.id, name: user.name })
    const entry = index.byId.get(user.id)
    if (entry !== undefined) {
      entry.user = stored
      changed(index, entry.seq)
    } else {
      const added = { seq: ++this.#seq, user: stored }
      index.byId.set(user.id, added)
      index.order.push(added)
      // Behind every listed user: it changes the first page only if that one was the last.
      if (index.first?.page.next === undefined) index.first = null
    }
    this.#node?.presence({ room, event: 'join', user: stored, count: index.byId.size })
  }

  async leave (room: string, user: User): Promise<void> {
    const index = this.#rooms.get(room)
    const entry = index?.byId.get(user.id)
    if (index === undefined || entry === undefined) return
    index.byId.delete(user.id)
    entry.user = null
    changed(index, entry.seq)
    if (index.byId.size === 0) this.#rooms.delete(room)
    else if (++index.blanks >= MIN_COMPACT && index.blanks > index.byId.size) compact(index)
    this.#node?.presence({ room, event: 'leave', user: Object.freeze({ id: user.id, name: user.name }), count: index.byId.size })
  }

  async rename (room: string, user: User, previous: string): Promise<void> {
    const stored = Object.freeze({ id: user.id, name: user.name })
    const index = this.#rooms.get(room)
    const entry = index?.byId.get(user.id)
    if (entry !== undefined) {
      entry.user = stored
      changed(index as RoomIndex, entry.seq)
    }
    this.#node?.presence({ room, event: 'rename', user: stored, previous, count: index?.byId.size ?? 0 })
  }

  // Stored users are frozen, so they are handed out as they are: copying
  // each one per join adds up when a room is busy.
  async page (room: string, request: PageRequest): Promise<PresencePage> {
    const index = this.#rooms.get(room)
    if (index === undefined) return { users: [], count: 0 }
    const count = index.byId.size
    const { first } = index
    if (request.after === undefined && first !== null && first.limit === request.limit) {
      // The count changes with every join; the users and cursor did not.
      if (first.page.count !== count) first.page = { ...first.page, count }
      return first.page
    }
    const after = request.after === undefined ? 0 : parseSeq(request.after)
    // A cursor this server never handed out points nowhere: an empty last page.
    if (after === null) return { users: [], count }
    const { order } = index
    const users: User[] = []
    let i = firstAfter(order, after)
    let last = after
    for (; i < order.length && users.length < request.limit; i++) {
      const { user, seq } = order[i]
      if (user === null) continue
      users.push(user)
      last = seq
    }
    while (i < order.length && order[i].user === null) i++
    const page: PresencePage = i < order.length ? { users: Object.freeze(users) as User[], count, next: String(last) } : { users: Object.freeze(users) as User[], count }
    if (after === 0) index.first = { page, limit: request.limit, lastSeq: last }
    return page
  }

  async count (room: string): Promise<number> {
    return this.#rooms.get(room)?.byId.size ?? 0
  }

  close (): void {
    this.#node = null
    this.#rooms.clear()
  }
}

/**
 * The user at `seq` joined again, left or renamed: the first page is stale
 * if it lists them, or if it names a next page and nobody is left after it.
 */
function changed (index: RoomIndex, seq: number): void {
  const { first } = index
  if (first === null) return
  if (seq <= first.lastSeq || (first.page.next !== undefined && index.byId.size <= first.page.users.length)) index.first = null
}

function compact (index: RoomIndex): void {
  index.order = index.order.filter((entry) => entry.user !== null)
  index.blanks = 0
}

function parseSeq (cursor: string): number | null {
  return SEQ.test(cursor) ? Number(cursor) : null
}

/** The index of the first entry whose seq is above `seq`. */
function firstAfter (order: Entry[], seq: number): number {
  let low = 0
  let high = order.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (order[mid].seq <= seq) low = mid + 1
    else high = mid
  }
  return low
}
