import type { User } from '../protocol/wire.js'

/** A presence change, as every server hands it to its members of the room. */
export interface PresenceEvent {
  room: string
  event: 'join' | 'leave' | 'rename'
  user: User
  /** The old name, for `rename`. */
  previous?: string
  /** How many distinct users the room has on every server after the event. */
  count: number
}

/** What to page: up to `limit` users after the cursor `after` (a `next` of an earlier page). */
export interface PageRequest {
  limit: number
  after?: string
}

/** A page of a room's users, each once, and how many there are in all. */
export interface PresencePage {
  users: User[]
  count: number
  /** The cursor of the next page; absent on the last one. */
  next?: string
}

/** Where presence hands the events of the rooms this server has members in. */
export interface PresenceNode {
  /** Sends a presence event to this server's members of its room, except the user's own sockets. */
  presence (event: PresenceEvent): void
}

/** Who is in each room, across every server of one chat. */
export interface Presence {
  /** A user's first socket on this server joined `room`; announces the join unless the user is there already. */
  join (room: string, user: User): Promise<void>
  /** A user's last socket on this server left `room`; announces the leave unless the user is still there elsewhere. */
  leave (room: string, user: User): Promise<void>
  /** A user present on this server renamed; announces it. */
  rename (room: string, user: User, previous: string): Promise<void>
  /**
   * A page of the users in `room` on every server, each once, and their
   * count; paging from no cursor to the last page lists each user present
   * throughout exactly once. Neither may cost in proportion to the room's
   * size beyond the page. `toMembers`: the page goes to members of the room
   * on this server (in a `joined`), rather than to a caller who only looks;
   * presence that can lose data and restore it tells those members of what
   * their list lacked.
   */
  page (room: string, request: PageRequest, toMembers?: boolean): Promise<PresencePage>
  /** How many distinct users are in `room` on every server. */
  count (room: string): Promise<number>
}
