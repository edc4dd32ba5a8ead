/** The close codes the server sends: RFC 6455's (§7.4.1), and two of the 4000–4999 range left to applications. */
export const CloseCode = Object.freeze({
  /** The server is shutting down. */
  GOING_AWAY: 1001,
  /** A binary frame: the protocol is text. */
  UNSUPPORTED_DATA: 1003,
  /** A text frame that is not valid UTF-8 (sent by ws itself). */
  INVALID_PAYLOAD: 1007,
  /** A client that keeps flooding, or has too many frames in flight. */
  POLICY_VIOLATION: 1008,
  /** A frame larger than `maxPayload`. */
  MESSAGE_TOO_BIG: 1009,
  /** A client too slow to read what is sent to it. */
  TRY_AGAIN_LATER: 1013,
  /** The app disconnected the client (`app.chat.disconnect`): the client should not reconnect on its own. */
  DISCONNECTED: 4000,
  /** The session expired (`expiresAt` passed, or a refresh was refused): reconnect with fresh credentials. */
  SESSION_EXPIRED: 4001
})
