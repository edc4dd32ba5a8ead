import { createHash } from 'node:crypto'
import { DIRECT_PREFIX } from '../protocol/wire.js'

/**
 * The room of the direct conversation between users `a` and `b`: the same
 * whoever opens it and on every server. A SHA-256 of the two ids in sorted
 * order, base64url, keeps the name within the room rule (46 characters)
 * whatever the ids are, and says nothing of who talks to whom.
 */
export function directRoom (a: string, b: string): string {
  const pair = a < b ? [a, b] : [b, a]
  return DIRECT_PREFIX + createHash('sha256').update(JSON.stringify(pair)).digest('base64url')
}

/** Whether `room` is a direct room's name: only its two users may join it. */
export function isDirectRoom (room: string): boolean {
  return room.startsWith(DIRECT_PREFIX)
}
