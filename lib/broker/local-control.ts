import type { User } from '../protocol/wire.js'
import type { Control } from './control.js'

// Direct rooms remembered. The oldest is forgotten past this: a join by the
// room's name is then refused until one of its users opens it again by `with`.
const MAX_PAIRS = 100_000

/** Control within one server: no other server to tell, and direct rooms' users in memory. */
export class LocalControl implements Control {
  readonly #pairs = new Map<string, Map<string, string>>()
  readonly #maxPairs: number

  constructor (maxPairs = MAX_PAIRS) {
    this.#maxPairs = maxPairs
  }

  async send (): Promise<void> {}

  async pair (room: string, user: User, otherId: string): Promise<void> {
    let users = this.#pairs.get(room)
    // Re-inserted so the map's order is least recently opened first.
    if (users !== undefined) this.#pairs.delete(room)
    else users = new Map()
    users.set(user.id, user.name)
    if (!users.has(otherId)) users.set(otherId, otherId)
    this.#pairs.set(room, users)
    if (this.#pairs.size > this.#maxPairs) this.#pairs.delete(this.#pairs.keys().next().value as string)
  }

  async pairOf (room: string): Promise<User[] | null> {
    const users = this.#pairs.get(room)
    return users === undefined ? null : [...users].map(([id, name]) => ({ id, name }))
  }

  close (): void {
    this.#pairs.clear()
  }
}
