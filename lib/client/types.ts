// Types of the browser client's public API: erased from the compiled client,
// so they may come from server modules too.
import type { DeleteFrame, EditFrame, ErrorFrame, HistoryFrame, JoinedFrame, LeftFrame, MembersFrame, MessageFrame, PresenceFrame, RefreshedFrame, RenamedFrame, SignalFrame, User, WelcomeFrame } from '../protocol/wire.js'

/**
 * Where the connection is: `reconnecting` lasts from a drop until the next
 * `welcome`; `closed` is final (see the `closed` event).
 */
export type ConnectionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** Why a connection is over: the close code and reason of its last socket. */
export interface ClosedEvent {
  /**
   * `1000`: the app called `close()`. `4000`: the app on the server
   * disconnected this client. `4001`: the session expired and there is no
   * `params` option to reconnect with fresh credentials.
   */
  code: number
  reason: string
}

/** Events of a {@link ChatConnection} and what their listeners receive. */
export interface ChatEvents {
  message: MessageFrame
  /**
   * A message's text was changed, live or in a `joined` replay (then after
   * the `joined` event). Not emitted for a message the applied view shows
   * deleted. `ChatConnection.message(room, of)` has it applied.
   */
  edit: EditFrame
  /** A message was deleted, live or in a `joined` replay (then after the `joined` event); not emitted twice for one message. */
  delete: DeleteFrame
  /**
   * A room is joined. In a direct room, `with` is the other user: a
   * conversation this client opened with `openDirect`, or one the other user
   * started by sending a message (the server adds this client then).
   */
  joined: JoinedFrame
  /**
   * A `joined` the client did not ask for: the server started the room over
   * (its history was lost, or a gap could not be filled). Offsets start
   * again from the frame's; what was shown may not continue. The same frame
   * follows as a `joined` event.
   */
  reset: JoinedFrame
  /** A user joined, left or renamed; sent only while the room has at most the server's `presenceEventsMax` users. */
  presence: PresenceFrame
  /**
   * The number of users in a room changed: from a `joined`, a presence
   * event, a members page, or an `occupancy` frame (which replaces presence
   * events in rooms above the server's `presenceEventsMax`).
   */
  count: { room: string, count: number }
  /** A page of a room's users, asked for with `members()` or `loadMembers()`. */
  members: MembersFrame
  /**
   * An error frame. A `forbidden` with a `room` and no `cid` of a message
   * (the server refused a join, or a rejoin after the rights changed): the
   * client has dropped that room and will not ask again; join it again to retry.
   */
  error: ErrorFrame
  welcome: WelcomeFrame
  /** Out of a room: asked with `leave`, or `reason: 'removed'` by the app. Not rejoined on reconnect. */
  left: LeftFrame
  renamed: RenamedFrame
  /** A `refresh(token)` was accepted: the session now ends at `expiresAt`. */
  refreshed: RefreshedFrame
  status: ConnectionStatus
  /**
   * A room's read position or unread count changed: from its `joined`, a
   * new message from someone else, this client's `read()`, or the user's
   * other tab reading it.
   */
  unread: RoomUnread
  /**
   * This connection is over and will not reconnect: the app called
   * `close()` (1000), the server's app disconnected it (4000), or its
   * session expired with no `params` to reconnect with (4001). `status` is
   * `closed` by then.
   */
  closed: ClosedEvent
  /** A signal from another member of a room (any name the server accepts, `typing` included). */
  signal: SignalFrame
  /**
   * Who is typing in `room` changed: `users` is the whole list now (this
   * user not included), each listed until 5 s after their last typing
   * signal or their next message in the room. Empty after a drop or a leave.
   */
  typing: TypingEvent
  /** An older page of a room, loaded with `loadOlder()`: oldest first, all before what the room showed so far. */
  history: HistoryFrame
}

/** What `history()` asks for: up to `limit` messages of a room with offsets below `before`. */
export interface HistoryQuery {
  /** Offsets below this one; the oldest offset shown, to scroll back from it. */
  before: number
  /** 1 to 1000, and at most the server's `maxHistoryPage`. */
  limit: number
}

/** Why a `history()` or `loadOlder()` failed: the server's error code, or `not_open`, `closed`, `timeout`, `stale`. */
export interface HistoryError extends Error {
  code: string
}

/** The users typing in a room; see the `typing` event. */
export interface TypingEvent {
  room: string
  users: User[]
}

/**
 * Where the user stopped reading a room, and how many messages from others
 * came after it. The count starts from the server's (at most its
 * `historySize`) and follows the messages and reads since.
 */
export interface RoomUnread {
  room: string
  read: number
  unread: number
}

/** What the client knows of the users of a room it is in; see `ChatConnection.presence`. */
export interface RoomPresence {
  /** How many distinct users the room has, on every server. */
  count: number
  /** The users the client knows of: at most `count` while presence events flow. */
  users: User[]
  /** Whether `loadMembers()` has pages left to fetch. */
  more: boolean
}

/** Which page of a room's users `members()` asks for. */
export interface MembersPage {
  /** The `next` of the previous page. @default the first page */
  after?: string | undefined
  /** Users in the page, 1 to 1000. @default the server's `presenceListMax` */
  limit?: number | undefined
}

/**
 * Why a `members()` page did not come: `code` is the server's error code
 * (`not_in_room`, `unavailable`, ...), `not_open`, `closed` (the socket
 * dropped first) or `timeout`.
 */
export interface MembersError extends Error {
  code: string
}

/** The part of the WebSocket API the client uses; the browser's `WebSocket` and `ws` both fit. */
export interface WebSocketLike {
  send (data: string): void
  close (code?: number, reason?: string): void
  // `never` parameters accept both the DOM's and ws's event types.
  onmessage: ((event: never) => void) | null
  onclose: ((event: never) => void) | null
  onerror: ((event: never) => void) | null
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Display name, sent as `?name=`. @default the URL's `name`, else a guest name from the server */
  name?: string
  /**
   * Rooms to join besides the URL's room: its `?room=`, or without one the
   * server's `defaultRoom`. To join exactly a set of rooms (say, the ones a
   * page was in before a reload), put the first in the URL and the rest here.
   * @default []
   */
  rooms?: string[]
  /**
   * A token from an earlier connection's {@link ChatConnection.resumeToken},
   * sent as `?resume=` so the server gives back the same user id: kept in
   * `sessionStorage`, it makes a reloaded page the same user to everyone
   * else, not a second one. A token the server cannot verify (made with
   * another secret) gets a new id; when `identify` gives ids, it plays no part.
   * @default the URL's `resume`, else none
   */
  resume?: string
  /** WebSocket implementation; pass `WebSocket` from `ws` in Node. @default globalThis.WebSocket */
  WebSocket?: new (url: string) => WebSocketLike
  /**
   * Reconnect delays: full jitter over `initialMs * 2^attempt`, capped at
   * `maxMs`, from the first reconnect after a drop (a random 0 to
   * `initialMs`), so the clients of a server that restarts come back spread out.
   * @default { initialMs: 250, maxMs: 10000 }
   */
  backoff?: { initialMs: number, maxMs: number }
  /** Messages kept while not open; `send()` throws past this. @default 100 */
  maxQueue?: number
  /**
   * Query parameters for each connection, asked for again before every one
   * (the first too): a fresh token, say. They are set over the URL's; the
   * client's own (`name`, `room`, `since`, `resume`) win over them. A call
   * that throws, rejects or takes more than 10 s counts as a failed attempt:
   * the client waits its `backoff` and calls it again. With it, a session that expires (close
   * code 4001, or a refused `refresh`) reconnects once it resolves; without
   * it, 4001 ends the connection like 4000, since a new attempt would carry
   * the same credentials (with cookies the browser renews, pass `() => ({})`).
   * @default none
   */
  params?: () => Record<string, string> | Promise<Record<string, string>>
}
