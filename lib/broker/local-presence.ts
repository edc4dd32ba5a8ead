import type { User } from '../protocol/wire.js'
import type { Presence, PresenceNode } from './presence.js'

/** Presence within one server: a map per room, and every event handed straight back. */
export class LocalPresence implements Presence {
  #node: PresenceNode | null = null
  readonly #rooms = new Map<string, Map<string, User>>()

  start (node: PresenceNode): void {
    this.#node = node
  }

  async join (room: string, user: User): Promise<void> {
    let users = this.#rooms.get(room)
    if (users === undefined) this.#rooms.set(room, users = new Map())
    const stored = Object.freeze({ id: user.id, name: user.name })
    users.set(user.id, stored)
    this.#node?.presence({ room, event: 'join', user: stored })
  }

  async leave (room: string, user: User): Promise<void> {
    const users = this.#rooms.get(room)
    if (users?.delete(user.id) !== true) return
    if (users.size === 0) this.#rooms.delete(room)
    this.#node?.presence({ room, event: 'leave', user: Object.freeze({ id: user.id, name: user.name }) })
  }

  async rename (room: string, user: User, previous: string): Promise<void> {
    const stored = Object.freeze({ id: user.id, name: user.name })
    this.#rooms.get(room)?.set(user.id, stored)
    this.#node?.presence({ room, event: 'rename', user: stored, previous })
  }

  // Stored users are frozen, so they are handed out as they are: a join
  // reads the whole room, and copying each user per join adds up in a big room.
  async list (room: string): Promise<User[]> {
    return [...(this.#rooms.get(room)?.values() ?? [])]
  }

  close (): void {
    this.#node = null
    this.#rooms.clear()
  }
}
