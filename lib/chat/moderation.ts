import type { Control, ControlCommand } from '../broker/control.js'
import { CloseCode } from '../close-codes.js'
import { isRoomName, isWellFormed } from '../protocol/text.js'
import { MAX_USER_ID_LENGTH } from '../protocol/wire.js'
import type { User } from '../protocol/wire.js'
import type { Connection } from '../transport/connection.js'
import type { Connections } from '../transport/connections.js'
import { isDirectRoom } from './direct.js'
import type { Hub } from './hub.js'

/**
 * Moderation on every server: a command goes to the other servers through
 * the adapter's control, then runs on this server's sockets. Removing and
 * adding go through each socket's frame queue, after whatever it asked for
 * before, so a join still replaying is removed once it is in.
 */
export class Moderation {
  readonly #hub: Hub
  readonly #control: Control
  readonly #connections: Connections

  constructor (hub: Hub, control: Control, connections: Connections) {
    this.#hub = hub
    this.#control = control
    this.#connections = connections
  }

  /** Sends `command` to every other server, then runs it here; the number of sockets it acted on here. */
  async run (command: ControlCommand): Promise<number> {
    if (command.type !== 'add') {
      await this.#control.send(command)
      return this.apply(command)
    }
    // The sockets open when the add was given: one that opens while it is on
    // its way joins by itself (with its own `since`), and an add behind its
    // connect would answer it first with a `joined` it did not ask for.
    const open = new Set(this.#connections.ofUser(command.userId))
    await this.#control.send(command)
    if (this.#hub.closed) return 0
    return this.#add(command.room, command.userId, command.with, open)
  }

  /**
   * Adds the user's sockets to `room` on every server. In a direct room the
   * user is one of, they join it as its user: with the other as `with`, and
   * their messages there bring the other in.
   */
  async add (room: string, userId: string): Promise<number> {
    const pair = isDirectRoom(room) ? await this.#control.pairOf(room) : null
    const other = pair?.some((user) => user.id === userId) === true ? pair.find((user) => user.id !== userId) : undefined
    return await this.run(other === undefined ? { type: 'add', room, userId } : { type: 'add', room, userId, with: other })
  }

  /**
   * Runs `command` on this server's sockets (another server sent it, or
   * {@link run} did). `openBefore`: it arrives late; sockets opened since it
   * was sent are not disconnected or removed.
   */
  apply (command: ControlCommand, openBefore = Infinity): number {
    // From another server it came through Redis: checked like any input.
    if (this.#hub.closed || !isCommand(command)) return 0
    switch (command.type) {
      case 'disconnect': return this.#disconnect(command, openBefore)
      case 'remove': return this.#remove(command.room, command.userId, command.reason, openBefore)
      case 'add': return this.#add(command.room, command.userId, command.with)
    }
  }

  #disconnect (command: Extract<ControlCommand, { type: 'disconnect' }>, openBefore: number): number {
    let targets: Connection[]
    if (typeof command.clientId === 'string') {
      const conn = this.#connections.byKey(command.clientId)
      targets = conn === undefined ? [] : [conn]
    } else {
      targets = this.#connections.ofUser(command.userId)
    }
    let closed = 0
    for (const conn of targets) {
      if (conn.closedByServer || conn.openedAt >= openBefore) continue
      closed++
      conn.close(CloseCode.DISCONNECTED, command.reason).catch(() => {})
    }
    return closed
  }

  #remove (room: string, userId: string, message: string | undefined, openBefore: number): number {
    let removed = 0
    for (const conn of this.#connections.ofUser(userId)) {
      if (!conn.inRoom(room) || conn.openedAt >= openBefore) continue
      removed++
      conn.enqueue(async () => {
        this.#hub.leave(conn, room, { removed: message === undefined ? {} : { message } })
      })
    }
    return removed
  }

  #add (room: string, userId: string, direct: User | undefined, among?: ReadonlySet<Connection>): number {
    let added = 0
    for (const conn of this.#connections.ofUser(userId)) {
      if (conn.inRoom(room) || conn.closedByServer || (among !== undefined && !among.has(conn))) continue
      added++
      conn.enqueue(async () => {
        // It may have joined by itself meanwhile: that join answered already.
        if (!conn.inRoom(room)) await this.#hub.join(conn, room, undefined, direct)
      })
    }
    return added
  }
}

function isId (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_USER_ID_LENGTH && isWellFormed(value)
}

function isUser (value: unknown): value is User {
  const user = value as Partial<User> | null
  return typeof user === 'object' && user !== null && isId(user.id) && typeof user.name === 'string'
}

/** Whether `value` is a command as `app.chat` makes them. */
function isCommand (value: unknown): value is ControlCommand {
  const command = value as Record<string, unknown> | null
  if (typeof command !== 'object' || command === null) return false
  switch (command.type) {
    case 'disconnect':
      return typeof command.reason === 'string' && (command.userId === undefined) !== (command.clientId === undefined) &&
        (command.userId === undefined || isId(command.userId)) && (command.clientId === undefined || isId(command.clientId))
    case 'remove':
      return isRoomName(command.room) && isId(command.userId) && (command.reason === undefined || typeof command.reason === 'string')
    case 'add':
      return isRoomName(command.room) && isId(command.userId) && (command.with === undefined || isUser(command.with))
    default:
      return false
  }
}
