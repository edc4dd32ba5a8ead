import type { PresenceEvent, PresencePage } from '../broker/presence.js'
import type { MembersFrame, MembersRequest, OccupancyFrame, PresenceFrame } from '../protocol/wire.js'
import type { Connection } from '../transport/connection.js'
import type { Fanout } from './fanout.js'
import { Occupancy } from './occupancy.js'
import type { PresenceTracker } from './presence-tracker.js'
import type { Room } from './rooms.js'

/** What a roster is built from. */
export interface RosterParts {
  presence: PresenceTracker
  fanout: Fanout
  /** The room of that name with members here, or `undefined` when it has none or the hub is closed. */
  room: (name: string) => Room<Connection> | undefined
  /** Users listed in a `joined`, and a `members` page's default size. */
  listMax: number
  /** Above this many users, a room's members get `occupancy` instead of presence events. */
  eventsMax: number
  /** Least time between two `occupancy` frames of one room. */
  intervalMs: number
}

/**
 * Who is in a room, as its members here see it: a `presence` event as each
 * user comes, goes or is renamed (an `occupancy` count instead while the room
 * is big), and pages of its users for a `joined` and for `members`.
 */
export class Roster {
  readonly #presence: PresenceTracker
  readonly #fanout: Fanout
  readonly #room: (name: string) => Room<Connection> | undefined
  readonly #listMax: number
  readonly #occupancy: Occupancy

  constructor (parts: RosterParts) {
    this.#presence = parts.presence
    this.#fanout = parts.fanout
    this.#room = parts.room
    this.#listMax = parts.listMax
    this.#occupancy = new Occupancy({
      eventsMax: parts.eventsMax,
      intervalMs: parts.intervalMs,
      send: (room, count) => this.#sendOccupancy(room, count)
    })
  }

  /** The first page of `room`'s users, as a `joined` lists them. */
  page (room: string): Promise<PresencePage> {
    return this.#presence.page(room, { limit: this.#listMax })
  }

  /**
   * Answers a member's `members` with a page of the room's users; a socket
   * not in the room gets `not_in_room`, a failed read `unavailable`.
   */
  async members (conn: Connection, request: MembersRequest): Promise<void> {
    const { room, cid } = request
    if (!conn.inRoom(room)) {
      conn.sendError('not_in_room', `not in room "${room}"`, cid, room)
      return
    }
    let page
    try {
      const limit = request.limit ?? Math.max(1, this.#listMax)
      page = await this.#presence.page(room, request.after === undefined ? { limit } : { limit, after: request.after })
    } catch (err) {
      conn.request.log.error({ err, room }, 'fastify-chat: members failed, the adapter is unavailable')
      conn.sendError('unavailable', 'the room\'s members are unavailable right now, ask again', cid, room)
      return
    }
    const frame: MembersFrame = { type: 'members', room, users: page.users, count: page.count }
    if (page.next !== undefined) frame.next = page.next
    if (cid !== undefined) frame.cid = cid
    conn.send(frame)
  }

  /** Renames `conn`'s user in each of its rooms, and tells the socket. */
  rename (conn: Connection, name: string): void {
    const previous = conn.name
    conn.name = name
    this.#presence.renamed(conn.roomNames(), { id: conn.id, name }, previous)
    conn.send({ type: 'renamed', name, previous })
  }

  /** A user came, went or was renamed in a room, here or on another server. */
  event (event: PresenceEvent): void {
    const room = this.#room(event.room)
    if (room === undefined) return
    if (!this.#occupancy.event(room.name, event.count)) return
    const frame: PresenceFrame = { type: 'presence', room: event.room, event: event.event, user: event.user, count: event.count }
    if (event.previous !== undefined) frame.previous = event.previous
    this.#fanout.presence(room, JSON.stringify(frame), event.user.id)
  }

  /** The room has no member here any more. */
  forget (room: string): void {
    this.#occupancy.forget(room)
  }

  close (): void {
    this.#occupancy.close()
  }

  #sendOccupancy (name: string, count: number): void {
    const room = this.#room(name)
    if (room === undefined) return
    const frame: OccupancyFrame = { type: 'occupancy', room: name, count }
    this.#fanout.presence(room, JSON.stringify(frame), null)
  }
}
