import type { JoinedFrame, MembersFrame, MembersRequest, PresenceFrame, User } from '../protocol/wire.js'
import type { ChatEvents, MembersError, MembersPage, RoomPresence } from './types.js'
import { checkPage, checkRoom, MAX_MEMBERS_PAGE } from './checks.js'
import type { Emitter } from './emitter.js'
import { codedError, randomCid, Requests } from './requests.js'

/** How long a `members()` page may take before its promise rejects. */
const MEMBERS_TIMEOUT_MS = 10_000

export function membersError (code: string, message: string): MembersError {
  return codedError(code, message)
}

/** The request for `page` of `room`'s users, checked, with a fresh cid. */
export function membersRequest (room: string, page: MembersPage): MembersRequest {
  const { after, limit } = checkPage(page)
  const frame: MembersRequest = { type: 'members', room: checkRoom(room), cid: randomCid() }
  if (after !== undefined) frame.after = after
  if (limit !== undefined) frame.limit = limit
  return frame
}

/** What the client knows of a joined room's users. */
interface RoomRoster {
  count: number
  users: Map<string, User>
  // Where loadMembers() goes on: the last page's `next`; none before the first page or after the last.
  after: string | undefined
}

/** Whether loadMembers() has pages to fetch: it is partway through, or knows of fewer users than there are. */
function hasMore ({ after, users, count }: RoomRoster): boolean {
  return after !== undefined || users.size < count
}

/**
 * The users of each joined room as far as the client knows them: the
 * server's count, the users of `joined`, of members pages and of presence
 * events; the members pages asked for and not answered yet, and where paging
 * through them goes on. Emits `count` when a count changes, and `members`.
 */
export class Roster {
  #rooms = new Map<string, RoomRoster>()
  // members() requests waiting for their page; a socket that drops fails them.
  #pages = new Requests<MembersFrame>()
  #events: Emitter<ChatEvents>

  constructor (events: Emitter<ChatEvents>) {
    this.#events = events
  }

  /** A copy of what is known of `room`; `undefined` when not in it. */
  presence (room: string): RoomPresence | undefined {
    const roster = this.#rooms.get(room)
    return roster === undefined ? undefined : { count: roster.count, users: [...roster.users.values()], more: hasMore(roster) }
  }

  /** A `joined` starts the room's list over; returns the count known before, if any. */
  start (frame: JoinedFrame): number | undefined {
    const before = this.#rooms.get(frame.room)?.count
    const users = new Map(frame.users.map((user) => [user.id, user]))
    this.#rooms.set(frame.room, { count: frame.count, users, after: frame.next })
    return before
  }

  setCount (room: string, count: number): void {
    const roster = this.#rooms.get(room)
    if (roster === undefined || roster.count === count) return
    roster.count = count
    this.#events.emit('count', { room, count })
  }

  onPresence (frame: PresenceFrame): void {
    const users = this.#rooms.get(frame.room)?.users
    if (frame.event === 'leave') users?.delete(frame.user.id)
    else users?.set(frame.user.id, frame.user)
    this.setCount(frame.room, frame.count)
  }

  onMembers (frame: MembersFrame): void {
    const users = this.#rooms.get(frame.room)?.users
    if (users !== undefined) for (const user of frame.users) users.set(user.id, user)
    this.setCount(frame.room, frame.count)
    this.#pages.answer(frame.cid, frame)
    this.#events.emit('members', frame)
  }

  /** Rejects the members() request an error frame answers; says whether there was one. */
  onError (cid: string | undefined, code: string, message: string): boolean {
    return this.#pages.answer(cid, membersError(code, message))
  }

  /** Sends `frame` with `write` and waits for its page, at most 10 s. */
  async request (frame: MembersRequest, write: (frame: MembersRequest) => void): Promise<MembersFrame> {
    const answer = this.#pages.wait(frame.cid as string, MEMBERS_TIMEOUT_MS, () => membersError('timeout', 'no members page within 10 s'))
    write(frame)
    return await answer
  }

  /** The socket dropped: no page will come. */
  failPages (): void {
    this.#pages.failAll(() => membersError('closed', 'the socket closed before the page came'))
  }

  /**
   * Fetches `room`'s next page (after the last one loaded) with `members`;
   * resolves with whether more are left.
   */
  async loadMore (room: string, limit: number | undefined, members: (page: MembersPage) => Promise<MembersFrame>): Promise<boolean> {
    const roster = this.#rooms.get(room)
    if (roster === undefined) throw membersError('not_in_room', `not in room ${JSON.stringify(room)}`)
    checkPage({ limit })
    const known = roster.users.size
    // From the start (a joined without `next` listed everyone then, but the
    // room grew since), the first users are the ones already known: ask
    // past them, so that each call brings users not shown yet.
    if (roster.after === undefined && known > 0) limit = Math.min(MAX_MEMBERS_PAGE, known + (limit ?? known))
    const page = await members({ after: roster.after, limit })
    // A rejoin while the page was on its way started a new list, whose paging starts over.
    if (this.#rooms.get(room) === roster) roster.after = page.next
    const now = this.#rooms.get(room)
    return now !== undefined && hasMore(now)
  }

  /** The user `id` took a new name: every list it is in follows. */
  rename (id: string, name: string): void {
    for (const { users } of this.#rooms.values()) if (users.has(id)) users.set(id, { id, name })
  }

  delete (room: string): void {
    this.#rooms.delete(room)
  }

  clear (): void {
    this.#rooms.clear()
  }
}
