import type { Presence } from '../../lib/broker/presence.js'
import type { User } from '../../lib/protocol/wire.js'

/** Every user of `room`, paging `limit` at a time, and how many pages it took; bounded so a cursor that never ends fails the test. */
export async function everyone (presence: Presence, room: string, limit: number): Promise<{ users: User[], pages: number }> {
  const users: User[] = []
  let after: string | undefined
  for (let pages = 1; pages <= 10_000; pages++) {
    const page = await presence.page(room, after === undefined ? { limit } : { limit, after })
    users.push(...page.users)
    if (page.next === undefined) return { users, pages }
    after = page.next
  }
  throw new Error('paging never ended')
}
