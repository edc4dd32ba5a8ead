import type { ChatMessage, ClientFrame, DeleteFrame, EditFrame, EditRequest, ErrorCode, HistoryFrame, HistoryRequest, JoinedFrame, MembersRequest, MessageFrame, SendFrame, SignalRequest, Since, User } from './wire.js'
import { MAX_CID_LENGTH, MAX_CURSOR_LENGTH, MAX_HISTORY_PAGE, MAX_MEMBERS_PAGE, MAX_NAME_LENGTH, MAX_SIGNAL_DATA_BYTES, MAX_TOKEN_LENGTH, MAX_USER_ID_LENGTH, SIGNAL_NAME_PATTERN } from './wire.js'
import { checkMeta } from './meta.js'
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
export function decodeClientFrame (raw: string, maxMessageLength: number, maxMetaBytes: number): Decoded {
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
      const frame: SendFrame = { type: 'message', text: value.text }
      if (value.room !== undefined) frame.room = value.room
      if (cid !== undefined) frame.cid = cid
      return withMeta(frame, value.meta, maxMetaBytes, cid)
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
    case 'history':
      return decodeHistory(value, cid)
    case 'signal':
      return decodeSignal(value, cid)
    case 'edit':
    case 'delete':
      return decodeAmendment(value, value.type, maxMessageLength, maxMetaBytes, cid)
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

const HISTORY_KEYS: ReadonlySet<string> = new Set(['type', 'room', 'before', 'limit', 'cid'])

// Strict, unlike older frames: a misspelt field ("after", "offset") would
// otherwise page from somewhere the client did not mean.
function decodeHistory (value: Record<string, unknown>, cid: string | undefined): Decoded {
  if (!isRoomName(value.room)) return fail('invalid_room', ROOM_RULE, cid)
  for (const key of Object.keys(value)) {
    if (!HISTORY_KEYS.has(key)) return fail('invalid_message', `a history request has no field "${key.slice(0, 32)}"`, cid)
  }
  if (!isOffset(value.before)) return fail('invalid_message', '"before" must be an integer >= 0', cid)
  const { limit } = value
  if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_HISTORY_PAGE) {
    return fail('invalid_message', `"limit" must be an integer from 1 to ${MAX_HISTORY_PAGE}`, cid)
  }
  const frame: HistoryRequest = { type: 'history', room: value.room, before: value.before, limit: limit as number }
  if (cid !== undefined) frame.cid = cid
  return { ok: true, frame }
}

function decodeSignal (value: Record<string, unknown>, cid: string | undefined): Decoded {
  if (!isRoomName(value.room)) return fail('invalid_room', ROOM_RULE, cid)
  if (typeof value.name !== 'string' || !SIGNAL_NAME_PATTERN.test(value.name)) {
    return fail('invalid_message', '"name" must be a signal name: 1 to 32 letters, digits, _ . : or -', cid)
  }
  const frame: SignalRequest = { type: 'signal', room: value.room, name: value.name }
  if (value.data !== undefined) {
    // Parsed from JSON, so it serialises back; its length decides, not its shape.
    if (Buffer.byteLength(JSON.stringify(value.data)) > MAX_SIGNAL_DATA_BYTES) {
      return fail('too_large', `"data" must be at most ${MAX_SIGNAL_DATA_BYTES} bytes of JSON`, cid)
    }
    frame.data = value.data
  }
  if (cid !== undefined) frame.cid = cid
  return { ok: true, frame }
}

/**
 * The `history` frame, with as many of the page's latest messages as keep
 * it within `maxBytes` (UTF-8), for the reason {@link encodeJoined} gives.
 * When some are left out, `more` is true: the client asks again from the
 * first one it got. The latest message is always in: each page moves on.
 */
export function encodeHistory (frame: HistoryFrame, maxBytes: number): string {
  const { messages } = frame
  const cid = frame.cid === undefined ? '' : `,"cid":${JSON.stringify(frame.cid)}`
  const head = JSON.stringify({ type: 'history', room: frame.room, epoch: frame.epoch }).slice(0, -1)
  // `,"messages":[` + `],"more":false` + `}`.
  let bytes = Buffer.byteLength(head) + 13 + 14 + Buffer.byteLength(cid) + 1
  const kept: string[] = []
  for (let i = messages.length - 1; i >= 0; i--) {
    const encoded = encodeEntry(messages[i] as ChatMessage)
    bytes += Buffer.byteLength(encoded) + (kept.length > 0 ? 1 : 0)
    // Always one: a page that fits nothing would be asked for again and again.
    if (bytes > maxBytes && kept.length > 0) break
    kept.push(encoded)
  }
  const more = frame.more || kept.length < messages.length
  return `${head},"messages":[${kept.reverse().join(',')}],"more":${String(more)}${cid}}`
}

function decodeAmendment (value: Record<string, unknown>, type: 'edit' | 'delete', maxMessageLength: number, maxMetaBytes: number, cid: string | undefined): Decoded {
  if (!isRoomName(value.room)) return fail('invalid_room', ROOM_RULE, cid)
  if (!isOffset(value.of) || value.of < 1) return fail('invalid_message', '"of" must be the offset of a message, an integer >= 1', cid)
  const { room, of } = value
  if (type === 'delete') return { ok: true, frame: cid === undefined ? { type, room, of } : { type, room, of, cid } }
  if (typeof value.text !== 'string') return fail('invalid_message', '"text" must be a string', cid)
  const bad = checkText(value.text, maxMessageLength, cid)
  if (bad !== null) return bad
  const frame: EditRequest = { type, room, of, text: value.text }
  if (cid !== undefined) frame.cid = cid
  return withMeta(frame, value.meta, maxMetaBytes, cid)
}

/** A message or an edit, with its `meta` when it has one that passes {@link checkMeta}. */
function withMeta (frame: SendFrame | EditRequest, meta: unknown, maxMetaBytes: number, cid: string | undefined): Decoded {
  if (meta === undefined) return { ok: true, frame }
  const checked = checkMeta(meta, maxMetaBytes)
  if (!checked.ok) return fail(checked.code, checked.message, cid)
  frame.meta = meta as Record<string, unknown>
  return { ok: true, frame }
}

/** The frame for a stored entry (a `message`, an `edit` or a `delete`), encoded once for every recipient. */
export function encodeMessage (message: ChatMessage): string {
  if (message.type !== undefined) return encodeAmendment(message)
  const frame: MessageFrame = {
    type: 'message',
    room: message.room,
    offset: message.offset,
    ts: message.ts,
    from: message.from,
    text: message.text
  }
  if (message.cid !== undefined) frame.cid = message.cid
  if (message.meta !== undefined) frame.meta = message.meta
  return JSON.stringify(frame)
}

function encodeAmendment (entry: ChatMessage): string {
  const { room, offset, ts, from, text, cid } = entry
  const of = entry.of as number
  const frame: EditFrame | DeleteFrame = entry.type === 'edit'
    ? { type: 'edit', room, offset, ts, from, of, text }
    : { type: 'delete', room, offset, ts, from, of }
  if (cid !== undefined) frame.cid = cid
  if (entry.meta !== undefined && frame.type === 'edit') frame.meta = entry.meta
  return JSON.stringify(frame)
}

/** A stored entry as an item of a replayed or paged history: as stored, but a delete carries no text. */
export function encodeEntry (entry: ChatMessage): string {
  if (entry.type !== 'delete') return JSON.stringify(entry)
  const { text: _, ...rest } = entry
  return JSON.stringify(rest)
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
    if (encoded === undefined) encodedMessages.set(history[i], encoded = encodeEntry(history[i]))
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
