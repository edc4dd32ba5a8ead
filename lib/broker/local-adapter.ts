import type { HistoryStore, NewMessage } from '../stores/history-store.js'
import type { User } from '../protocol/wire.js'
import type { Adapter, AdapterContext, AdapterNode, PublishResult } from './adapter.js'

/** The single-node adapter: stores through the plugin's store and hands everything straight back to this node. */
export class MemoryAdapter implements Adapter {
  #node: AdapterNode | null = null
  #store: HistoryStore | null = null
  #presence = new Map<string, Map<string, User>>()

  start (node: AdapterNode, context: AdapterContext): void {
    this.#node = node
    this.#store = context.store
  }

  async publish (message: NewMessage, exclude: string | null): Promise<PublishResult> {
    const stored = await (this.#store as HistoryStore).append(message)
    this.#node?.deliver(stored, exclude)
    return { message: stored, duplicate: false }
  }

  async subscribe (): Promise<void> {}

  async unsubscribe (): Promise<void> {}

  async join (room: string, user: User): Promise<void> {
    let users = this.#presence.get(room)
    if (users === undefined) this.#presence.set(room, users = new Map())
    const stored = Object.freeze({ id: user.id, name: user.name })
    users.set(user.id, stored)
    this.#node?.presence({ room, event: 'join', user: stored })
  }

  async leave (room: string, user: User): Promise<void> {
    const users = this.#presence.get(room)
    if (users?.delete(user.id) !== true) return
    if (users.size === 0) this.#presence.delete(room)
    this.#node?.presence({ room, event: 'leave', user: Object.freeze({ id: user.id, name: user.name }) })
  }

  async rename (room: string, user: User, previous: string): Promise<void> {
    const stored = Object.freeze({ id: user.id, name: user.name })
    this.#presence.get(room)?.set(user.id, stored)
    this.#node?.presence({ room, event: 'rename', user: stored, previous })
  }

  // Stored users are frozen, so they are handed out as they are: a join
  // reads the whole room, and copying each user per join adds up in a big room.
  async presence (room: string): Promise<User[]> {
    return [...(this.#presence.get(room)?.values() ?? [])]
  }

  close (): void {
    this.#node = null
    this.#presence.clear()
  }
}
