// Wire protocol v1: the frames exchanged over the socket. This module holds
// types and constants only, so the browser client can import it without
// pulling in any server code.

/** Version of the wire protocol described here. */
export const PROTOCOL_VERSION = 1

/** Room names accepted by the server. */
export const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

/** Longest display name, in Unicode characters, after sanitizing. */
export const MAX_NAME_LENGTH = 32

/** Longest client-chosen message id (`cid`). */
export const MAX_CID_LENGTH = 64

/** Longest user id a client may name (`with` of a direct join). */
export const MAX_USER_ID_LENGTH = 128

/** Longest token of a `refresh` frame. */
export const MAX_TOKEN_LENGTH = 8192

/** Most users one `members` page (or `app.chat.presence` call) may ask for. */
export const MAX_MEMBERS_PAGE = 1000

/** Most messages one `history` page may hold: the upper bound of the `maxHistoryPage` option. */
export const MAX_HISTORY_PAGE = 1000

/** Longest `after` cursor of a `members` frame. */
export const MAX_CURSOR_LENGTH = 256

/** Names a `signal` may have; which of them a server accepts is its `signals` option. */
export const SIGNAL_NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,32}$/

/** Longest `data` of a `signal`, in bytes of its JSON: signals are hints (typing), not a second message channel. */
export const MAX_SIGNAL_DATA_BYTES = 256

/** Direct rooms' names start with this; they are open only to their two users. */
export const DIRECT_PREFIX = 'dm-'

/** A user as other clients see it. */
export interface User {
  id: string
  name: string
}

/**
 * A stored entry of a room's log, as delivered to clients and returned by
 * `app.chat`: a message, or (with `type`) an edit or a delete of the message
 * at offset `of`. Nothing in the log changes in place; clients apply edits
 * and deletes to the messages they show.
 */
export interface ChatMessage {
  room: string
  /** Position in the room: 1, 2, 3, ... */
  offset: number
  /** Milliseconds since the Unix epoch. */
  ts: number
  from: User
  /** The message's text, or an edit's new text; empty for a delete (whose frames carry none). */
  text: string
  /** Client-chosen id, echoed back. */
  cid?: string
  /** Structured data the sender attached (a JSON object); absent when none was. See docs/protocol.md. */
  meta?: Record<string, unknown>
  /** Absent for a message. */
  type?: EntryType
  /** For an edit or a delete: the offset of the message it applies to. */
  of?: number
}

/** What a log entry other than a message does to the message at its `of`. */
export type EntryType = 'edit' | 'delete'

/** Error codes sent in `error` frames. */
export type ErrorCode =
  | 'invalid_message'
  | 'unknown_type'
  | 'empty_text'
  | 'text_too_long'
  | 'too_large'
  | 'invalid_room'
  | 'not_in_room'
  | 'too_many_rooms'
  | 'invalid_name'
  | 'rejected'
  | 'forbidden'
  | 'unknown_signal'
  | 'not_found'
  | 'edit_window_expired'
  | 'rate_limited'
  | 'overloaded'
  | 'unavailable'
  | 'internal_error'

/** Where a client stopped reading a room: resume after `offset` if `epoch` still matches. */
export interface Since {
  epoch: string
  offset: number
}

export interface WelcomeFrame {
  type: 'welcome'
  /** The user's id: the same for every socket (tab) of one user. */
  id: string
  /** This socket's id: distinct for every socket, even of one user. */
  clientId: string
  name: string
  /** When the session ends (milliseconds since the Unix epoch) unless refreshed; absent when it does not. */
  expiresAt?: number
  /** Send back as `?resume=` when reconnecting to keep this id (absent when `identify` gave the id). */
  resume?: string
}
export interface JoinedFrame {
  type: 'joined'
  room: string
  epoch: string
  offset: number
  recovered: boolean
  history: ChatMessage[]
  /** Some of the room's users: at most the server's `presenceListMax`; page the rest with `members`. */
  users: User[]
  /** How many distinct users are in the room, on every server. */
  count: number
  /** When `users` is not all of them: the `after` of a `members` request for the next page. */
  next?: string
  /** In a direct room: the other user. */
  with?: User
  /** The user's read position in the room: the offset they read up to, 0 when none. Always sent by this server. */
  read?: number
  /** Messages after `read` that are plain (not edits or deletes) and not the user's own; counts at most the server's `historySize`. Always sent by this server. */
  unread?: number
}
export interface MessageFrame extends Omit<ChatMessage, 'type' | 'of'> { type: 'message' }
/** A message's new text: a numbered entry of the room's log, like a message. */
export interface EditFrame extends Omit<ChatMessage, 'type' | 'of'> { type: 'edit', of: number }
/** A message taken back: a numbered entry of the room's log, like a message, without text. */
export interface DeleteFrame extends Omit<ChatMessage, 'type' | 'of' | 'text'> { type: 'delete', of: number }
export interface PresenceFrame {
  type: 'presence'
  room: string
  event: 'join' | 'leave' | 'rename'
  user: User
  previous?: string
  /** How many distinct users are in the room after the event. */
  count: number
}
/**
 * How many users are in a room, sent instead of presence events while it has
 * more than the server's `presenceEventsMax`: at most one per
 * `occupancyIntervalMs`, and only when the count changed.
 */
export interface OccupancyFrame { type: 'occupancy', room: string, count: number }
/** A page of a room's users; `next`, when present, is the `after` of the next page. */
export interface MembersFrame { type: 'members', room: string, users: User[], count: number, next?: string, cid?: string }
/**
 * A page of a room's older messages, oldest first: the answer to a `history`
 * request. `more` tells whether the room keeps older ones; ask again with
 * the first message's offset as `before`. `epoch` is the room's now: when it
 * is not the one of the client's `joined`, the offsets are from another
 * history.
 */
export interface HistoryFrame { type: 'history', room: string, epoch: string, messages: ChatMessage[], more: boolean, cid?: string }
/** Leaving a room; `reason` is set when the client did not ask: `removed` by the app. */
export interface LeftFrame { type: 'left', room: string, reason?: 'removed', message?: string }
export interface RenamedFrame { type: 'renamed', name: string, previous: string }
/** A `refresh` was accepted: the session now ends at `expiresAt`. */
export interface RefreshedFrame { type: 'refreshed', expiresAt: number }
/**
 * An ephemeral event from another member of `room` (say, `typing`): never
 * stored, numbered or replayed, and dropped rather than queued when a socket lags.
 */
export interface SignalFrame { type: 'signal', room: string, name: string, from: User, data?: unknown }
/** The user's read position in `room` moved: sent to their other sockets in the room. */
export interface ReadFrame { type: 'read', room: string, offset: number }
export interface ErrorFrame { type: 'error', code: ErrorCode, message: string, room?: string, cid?: string }

/** Every frame the server sends. */
export type ServerFrame =
  | WelcomeFrame
  | JoinedFrame
  | MessageFrame
  | EditFrame
  | DeleteFrame
  | PresenceFrame
  | OccupancyFrame
  | MembersFrame
  | HistoryFrame
  | LeftFrame
  | RenamedFrame
  | RefreshedFrame
  | SignalFrame
  | ReadFrame
  | ErrorFrame

export interface SendFrame { type: 'message', text: string, room?: string, cid?: string, meta?: Record<string, unknown> }
/** Joins a room by name, or (with `with`) the direct room of the sender and that user. */
export type JoinFrame =
  | { type: 'join', room: string, with?: undefined, since?: Since, cid?: string }
  | { type: 'join', with: string, room?: undefined, since?: Since, cid?: string }
export interface LeaveFrame { type: 'leave', room: string }
export interface NameFrame { type: 'name', name: string }
/** Extends the session with a fresh token (see the `refresh` option). */
export interface RefreshFrame { type: 'refresh', token: string }

/** Asks for a page of a room the client is in: `limit` users (default the server's `presenceListMax`) after the cursor `after`. */
export interface MembersRequest { type: 'members', room: string, after?: string, limit?: number, cid?: string }

/** Asks for the latest `limit` (1 to the server's `maxHistoryPage`) messages of a room you are in with an offset below `before`. */
export interface HistoryRequest { type: 'history', room: string, before: number, limit: number, cid?: string }

/** An ephemeral event for the other members of `room`; `name` must be one of the server's `signals`. */
export interface SignalRequest { type: 'signal', room: string, name: string, data?: unknown, cid?: string }

/** Replaces the text of the message at offset `of` (by default only its author may). */
export interface EditRequest { type: 'edit', room: string, of: number, text: string, meta?: Record<string, unknown>, cid?: string }
/** Deletes the message at offset `of` (by default only its author may). */
export interface DeleteRequest { type: 'delete', room: string, of: number, cid?: string }

/** Moves the user's read position in `room` forward to `offset` (clamped to the room's latest). */
export interface ReadRequest { type: 'read', room: string, offset: number }

/** Every frame a client may send (a plain-text frame is a `message` to the first room). */
export type ClientFrame = SendFrame | JoinFrame | LeaveFrame | NameFrame | RefreshFrame | MembersRequest | SignalRequest | HistoryRequest | EditRequest | DeleteRequest | ReadRequest
