// What the client checks before a frame leaves, so that a bad argument
// throws at the call instead of coming back as an error frame, or being
// retried on every reconnect. The limits are copies of wire.ts's: a type
// import cannot carry a value (a test keeps ROOM_PATTERN equal to the server's).
import type { MembersPage } from './types.js'

/** wire.ts's MAX_USER_ID_LENGTH. */
export const MAX_USER_ID_LENGTH = 128
/** wire.ts's MAX_TOKEN_LENGTH. */
export const MAX_TOKEN_LENGTH = 8192
/** wire.ts's MAX_MEMBERS_PAGE. */
export const MAX_MEMBERS_PAGE = 1000
/** wire.ts's MAX_CURSOR_LENGTH. */
export const MAX_CURSOR_LENGTH = 256

/** Room names the server accepts: wire.ts's ROOM_PATTERN. */
export const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

export function checkRoom (room: string): string {
  if (typeof room !== 'string' || !ROOM_PATTERN.test(room)) {
    throw new TypeError(`invalid room name ${JSON.stringify(room)}: use 1 to 64 of A-Z a-z 0-9 _ -`)
  }
  return room
}

/** An offset a message can have: what `edit` and `delete` name as `of`. */
export function checkOffset (offset: number): number {
  if (!Number.isSafeInteger(offset) || offset < 1) throw new TypeError(`invalid offset ${JSON.stringify(offset)}: a message's offset is an integer >= 1`)
  return offset
}

export function checkUserId (userId: string): string {
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
    throw new TypeError(`invalid user id ${JSON.stringify(userId)}: use 1 to ${MAX_USER_ID_LENGTH} characters`)
  }
  return userId
}

/** A message's `meta`: a plain JSON object (the server checks its size and schema). */
export function checkMeta (meta: Record<string, unknown>): Record<string, unknown> {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new TypeError('meta must be a JSON object')
  return meta
}

export function checkToken (token: string): string {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    throw new TypeError(`a token must be a string of 1 to ${MAX_TOKEN_LENGTH} characters`)
  }
  return token
}

export function checkPage ({ after, limit }: MembersPage): MembersPage {
  if (after !== undefined && (typeof after !== 'string' || after.length > MAX_CURSOR_LENGTH)) {
    throw new TypeError(`after must be a cursor from a page's next, of at most ${MAX_CURSOR_LENGTH} characters`)
  }
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > MAX_MEMBERS_PAGE)) {
    throw new TypeError(`limit must be an integer from 1 to ${MAX_MEMBERS_PAGE}`)
  }
  return { after, limit }
}
