import type { ChatMessage, ClientFrame, ErrorCode, JoinedFrame, MembersRequest, MessageFrame, Since, User } from './wire.js'
import { MAX_CID_LENGTH, MAX_CURSOR_LENGTH, MAX_MEMBERS_PAGE, MAX_NAME_LENGTH, MAX_TOKEN_LENGTH, MAX_USER_ID_LENGTH } from './wire.js'
import { ROOM_RULE, isRoomName, isWellFormed, sanitizeName, textProblem } from './text.js'

/** The result of decoding one client frame: a checked frame, or the error to answer with. */
export type Decoded =
  | { ok: true, frame: ClientFrame }
  | { ok: false, code: ErrorCode, message: string, cid?: string }

// JSON's own whitespace: what may stand before the `{` of a protocol frame.
const NOT_JSON_SPACE = /[^ \t\r\n]/
const DIGITS = /^\d{1,16}$/

/** Parses the `since` query parameter, `<epoch>:<offset>`. */
export function parseSinceParam (value: unknown): Since | null {
  if (typeof value !== 'string') return null
  const sep = value.lastIndexOf(':')
  if (sep < 1) return null
  const digits = value.slice(sep + 1)
  const offset = Number(digits)
  if (!DIGITS.test(digits) || !isOffset(offset)) return null
  return { epoch: value.slice(0, sep), offset }
}

function isOffset (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function fail (code: ErrorCode, message: string, cid?: string): Decoded {
  return cid === undefined ? { ok: false, code, message } : { ok: false, code, message, cid }
}

function checkText (text: string, maxLength: number, cid?: string): Decoded | null {
  const problem = textProblem(text, maxLength)
  return problem === null ? null : fail(problem.code, problem.message, cid)
}

/**
 * Decodes one text frame from a client. A frame whose first non-blank
 * character is not `{` is a plain chat message, so the classic chat page and
 * `wscat` work unchanged; anything starting with `{` must be a protocol object.
 */
export function decodeClientFrame (raw: string, maxMessageLength: number): Decoded {
  const start = raw.search(NOT_JSON_SPACE)
  if (start === -1 || raw.charCodeAt(start) !== 0x7b /* { */) {
    return checkText(raw, maxMessageLength) ?? { ok: true, frame: { type: 'message', text: raw } }
  }

  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return fail('invalid_message', 'frame starts with "{" but is not valid JSON')
  }
  if (!isPlainObject(value) || typeof value.type !== 'string') {
    return fail('invalid_message', 'frame must be an object with a string "type"')
  }

  // A cid that is itself malformed is not echoed: it is the error.
  let cid: string | undefined
  if (value.cid !== undefined) {
    if (typeof value.cid !== 'string' || value.cid.length === 0 || value.cid.length > MAX_CID_LENGTH || !isWellFormed(value.cid)) {
      return fail('invalid_message', `"cid" must be a string of 1 to ${MAX_CID_LENGTH} characters`)
    }
    cid = value.cid
  }

  switch (value.type) {
    case 'message': {
      if (typeof value.text !== 'string') return fail('invalid_message', '"text" must be a string', cid)
      if (value.room !== undefined && !isRoomName(value.room)) {
        return fail('invalid_room', ROOM_RULE, cid)
      }
      const bad = checkText(value.text, maxMessageLength, cid)
      if (bad !== null) return bad
      const frame: ClientFrame = { type: 'message', text: value.text }
      if (value.room !== undefined) frame.room = value.room
      if (cid !== undefined) frame.cid = cid
      return { ok: true, frame }
    }
    case 'join': {
      let frame: ClientFrame
      if (value.with !== undefined) {
        const other = value.with
        if (value.room !== undefined) return fail('invalid_message', 'a join names "room" or "with", not both', cid)
        if (typeof other !== 'string' || other.length === 0 || other.length > MAX_USER_ID_LENGTH || !isWellFormed(other)) {
          return fail('invalid_message', `"with" must be a user id of 1 to ${MAX_USER_ID_LENGTH} characters`, cid)
        }
        frame = { type: 'join', with: other }
      } else {
        if (!isRoomName(value.room)) return fail('invalid_room', ROOM_RULE, cid)
        frame = { type: 'join', room: value.room }
      }
      if (cid !== undefined) frame.cid = cid
      if (value.since === undefined) return { ok: true, frame }
      const since = value.since
      if (!isPlainObject(since) || typeof since.epoch !== 'string' || !isOffset(since.offset)) {
        return fail('invalid_message', '"since" must be { epoch: string, offset: integer >= 0 }', cid)
      }
      frame.since = { epoch: since.epoch, offset: since.offset }
      return { ok: true, frame }
    }
    case 'refresh':
      if (typeof value.token !== 'string' || value.token.length === 0 || value.token.length > MAX_TOKEN_LENGTH) {
        return fail('invalid_message', `"token" must be a string of 1 to ${MAX_TOKEN_LENGTH} characters`, cid)
      }
      return { ok: true, frame: { type: 'refresh', token: value.token } }
    case 'leave':
      if (!isRoomName(value.room)) return fail('invalid_room', ROOM_RULE, cid)
      return { ok: true, frame: { type: 'leave', room: value.room } }
    case 'name': {
      const name = sanitizeName(value.name)
      if (name === null) {
        return fail('invalid_name', `name must have 1 to ${MAX_NAME_LENGTH} characters besides blanks and control characters`, cid)
      }
      return { ok: true, frame: { type: 'name', name } }
    }
    case 'members':
      return decodeMembers(value, cid)
    case 'read':
      if (!isRoomName(value.room)) return fail('invalid_room', ROOM_RULE, cid)
      if (!isOffset(value.offset)) return fail('invalid_message', '"offset" must be an integer >= 0', cid)
      return { ok: true, frame: { type: 'read', room: value.room, offset: value.offset } }
    default:
      return fail('unknown_type', `unknown frame type "${value.type.slice(0, 32)}"`, cid)
  }
}

/** Whether `value` is a page size a client or the app may ask for. */
export function isPageLimit (value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= MAX_MEMBERS_PAGE
}

/** Whether `value` can be a `next` that the server handed out; what it means is presence's business. */
export function isCursor (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_CURSOR_LENGTH && isWellFormed(value)
}

function decodeMembers (value: Record<string, unknown>, cid: string | undefined): Decoded {
  if (!isRoomName(value.room)) return fail('invalid_room', ROOM_RULE, cid)
  const frame: MembersRequest = { type: 'members', room: value.room }
  if (value.limit !== undefined) {
    if (!isPageLimit(value.limit)) return fail('invalid_message', `"limit" must be an integer from 1 to ${MAX_MEMBERS_PAGE}`, cid)
    frame.limit = value.limit
  }
  if (value.after !== undefined) {
    if (!isCursor(value.after)) return fail('invalid_message', `"after" must be the "next" of an earlier page, a string of 1 to ${MAX_CURSOR_LENGTH} characters`, cid)
    frame.after = value.after
  }
  if (cid !== undefined) frame.cid = cid
  return { ok: true, frame }
}

/** The `message` frame for a stored message, encoded once for every recipient. */
export function encodeMessage (message: ChatMessage): string {
  const frame: MessageFrame = {
    type: 'message',
    room: message.room,
    offset: message.offset,
    ts: message.ts,
    from: message.from,
    text: message.text
  }
  if (message.cid !== undefined) frame.cid = message.cid
  return JSON.stringify(frame)
}

// Presence hands out one frozen first page for as long as it holds: in a big
// room every join lists the same users, and encoding them once per join was
// a tenth of a join's CPU (bench fill).
const encodedUsers = new WeakMap<readonly User[], string>()
// Likewise the history of a page the broker hands to many joins at once.
const encodedMessages = new WeakMap<ChatMessage, string>()

/**
 * The `joined` frame, with as many of the latest history messages as keep
 * the whole frame within `maxBytes` (UTF-8): however large the messages, a
 * replay must not by itself leave a socket too far behind to stay open. When
 * some are left out, `recovered` is false (the client has a gap). The users
 * (a page of at most `presenceListMax`) are never cut.
 */
export function encodeJoined (frame: JoinedFrame, maxBytes: number): string {
  const { room, epoch, offset, history } = frame
  let listed = encodedUsers.get(frame.users)
  if (listed === undefined) {
    listed = JSON.stringify(frame.users)
    // Only a frozen list is the same list next time.
    if (Object.isFrozen(frame.users)) encodedUsers.set(frame.users, listed)
  }
  const next = frame.next === undefined ? '' : `,"next":${JSON.stringify(frame.next)}`
  const users = `,"users":${listed},"count":${frame.count}${next}}`
  const direct = frame.with === undefined ? {} : { with: frame.with }
  const { read, unread } = frame
  const head = (recovered: boolean): string => JSON.stringify({ type: 'joined', room, epoch, offset, recovered, ...direct, read, unread }).slice(0, -1)
  // `,"history":[` + `]`, and the longer of true/false.
  let bytes = Buffer.byteLength(head(false)) + 13 + Buffer.byteLength(users)
  const kept: string[] = []
  for (let i = history.length - 1; i >= 0; i--) {
    let encoded = encodedMessages.get(history[i])
    if (encoded === undefined) encodedMessages.set(history[i], encoded = JSON.stringify(history[i]))
    bytes += Buffer.byteLength(encoded) + (kept.length > 0 ? 1 : 0)
    if (bytes > maxBytes) break
    kept.push(encoded)
  }
  const recovered = frame.recovered && kept.length === history.length
  return `${head(recovered)},"history":[${kept.reverse().join(',')}]${users}`
}

/** The `cid` of a frame, if it has a valid one; for answering frames that are refused before decoding. */
export function peekCid (raw: string): string | undefined {
  const start = raw.search(NOT_JSON_SPACE)
  if (start === -1 || raw.charCodeAt(start) !== 0x7b /* { */) return undefined
  try {
    const cid: unknown = (JSON.parse(raw) as { cid?: unknown } | null)?.cid
    return typeof cid === 'string' && cid.length > 0 && cid.length <= MAX_CID_LENGTH && isWellFormed(cid) ? cid : undefined
  } catch {
    return undefined
  }
}
