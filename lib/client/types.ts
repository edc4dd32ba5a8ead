// Types of the browser client's public API; erased from the compiled client,
// which must stay free of runtime imports.
import type { ErrorFrame, JoinedFrame, LeftFrame, MessageFrame, PresenceFrame, RenamedFrame, WelcomeFrame } from '../protocol/wire.js'

/** Where the connection is: `reconnecting` lasts from a drop until the next `welcome`. */
export type ConnectionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** Events of a {@link ChatConnection} and what their listeners receive. */
export interface ChatEvents {
  message: MessageFrame
  joined: JoinedFrame
  /**
   * A `joined` the client did not ask for: the server started the room over
   * (its history was lost, or a gap could not be filled). Offsets start
   * again from the frame's; what was shown may not continue. The same frame
   * follows as a `joined` event.
   */
  reset: JoinedFrame
  presence: PresenceFrame
  error: ErrorFrame
  welcome: WelcomeFrame
  left: LeftFrame
  renamed: RenamedFrame
  status: ConnectionStatus
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
  /** Reconnect delays: full jitter over `initialMs * 2^attempt`, capped at `maxMs`. @default { initialMs: 250, maxMs: 10000 } */
  backoff?: { initialMs: number, maxMs: number }
  /** Messages kept while not open; `send()` throws past this. @default 100 */
  maxQueue?: number
}
