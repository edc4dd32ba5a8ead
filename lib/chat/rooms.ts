import type { Batch } from './batch.js'

/** What a room needs of a member. */
export interface Member {
  readonly id: string
}

/** One room with members on this server. */
export interface Room<M extends Member = Member> {
  readonly name: string
  readonly members: Set<M>
  /** Local sockets per user id: a user with two tabs is one user. */
  readonly users: Map<string, number>
  /** Settles once this server receives the room's messages; every join waits for it. */
  readonly ready: Promise<void>
  /** What is to be written to the members at the next flush; owned by the fan-out. */
  batch: Batch | null
  /** Offset of the latest message queued for the members (0 before any, and after a reset); owned by the fan-out. */
  latest: number
  /**
   * Members whose `joined` replayed further than {@link latest}, with the
   * offset it replayed to: the live messages up to it are not theirs again.
   * Null when there is none, which is nearly always; owned by the fan-out.
   */
  floors: Map<M, number> | null
}

/** The rooms that have members on this server, and who is in each. */
export class Rooms<M extends Member = Member> {
  readonly #rooms = new Map<string, Room<M>>()

  get (name: string): Room<M> | undefined {
    return this.#rooms.get(name)
  }

  names (): string[] {
    return [...this.#rooms.keys()]
  }

  /**
   * Adds `member` to `name`, making the room (and calling `subscribe` for its
   * `ready`) if it had no member here. `firstOfUser`: no other socket of the
   * same user is in the room on this server.
   */
  add (member: M, name: string, subscribe: (room: string) => Promise<void>): { room: Room<M>, firstOfUser: boolean } {
    let room = this.#rooms.get(name)
    if (room === undefined) {
      const ready = subscribe(name)
      // Joins await it; this keeps a failure from also being an unhandled rejection.
      ready.catch(() => {})
      room = { name, members: new Set(), users: new Map(), ready, batch: null, latest: 0, floors: null }
      this.#rooms.set(name, room)
    }
    room.members.add(member)
    const sockets = room.users.get(member.id) ?? 0
    room.users.set(member.id, sockets + 1)
    return { room, firstOfUser: sockets === 0 }
  }

  /**
   * Takes `member` out of `name`; `null` when it was not in. `lastOfUser`: no
   * other socket of the user is left in the room here; `emptied`: the room
   * had no member left and is forgotten.
   */
  remove (member: M, name: string): { lastOfUser: boolean, emptied: boolean } | null {
    const room = this.#rooms.get(name)
    if (room === undefined || !room.members.delete(member)) return null
    if (room.floors?.delete(member) === true && room.floors.size === 0) room.floors = null
    const sockets = (room.users.get(member.id) ?? 1) - 1
    if (sockets > 0) room.users.set(member.id, sockets)
    else room.users.delete(member.id)
    const emptied = room.members.size === 0
    if (emptied) this.#rooms.delete(name)
    return { lastOfUser: sockets === 0, emptied }
  }
}
