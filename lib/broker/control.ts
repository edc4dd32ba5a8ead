import type { User } from '../protocol/wire.js'

/** A moderation command, as every server of the chat runs it on its own sockets. */
export type ControlCommand =
  /** Close the matching sockets with 4000 and `reason`. */
  | { type: 'disconnect', userId: string, clientId?: undefined, reason: string }
  | { type: 'disconnect', clientId: string, userId?: undefined, reason: string }
  /** Take the user's sockets out of `room`; each is told `left` with reason `removed`. */
  | { type: 'remove', room: string, userId: string, reason?: string }
  /** Join the user's open sockets not yet in `room` to it; `with` is the other user of a direct room. */
  | { type: 'add', room: string, userId: string, with?: User }

/** Where control hands the commands other servers sent. */
export interface ControlNode {
  /**
   * Runs a command another server sent on this server's sockets.
   * `openBefore` is set for a command this server missed when it was sent
   * and runs late (milliseconds since the Unix epoch, the sender's clock):
   * it disconnects and removes only sockets that were open by then.
   */
  command (command: ControlCommand, openBefore?: number): void
}

/**
 * What crosses servers besides messages and presence: moderation commands,
 * and who the two users of each direct room are. The in-process one has no
 * other server to tell; the Redis one uses a control channel and a hash per
 * direct room.
 */
export interface Control {
  /**
   * Hands `command` to every other server of the chat (this server runs it
   * itself); resolves once it has, and rejects with
   * `FST_CHAT_ADAPTER_UNAVAILABLE` when it cannot.
   */
  send (command: ControlCommand): Promise<void>
  /**
   * Records that direct room `room` belongs to `user` (with their name now)
   * and the user `otherId`, whose name stays what it was, or their id until
   * they join it themselves.
   */
  pair (room: string, user: User, otherId: string): Promise<void>
  /** The two users of direct room `room`, or `null` when it was never opened. */
  pairOf (room: string): Promise<User[] | null>
}
