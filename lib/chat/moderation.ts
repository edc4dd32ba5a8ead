import type { Control, ControlCommand } from '../broker/control.js'
import { CloseCode } from '../close-codes.js'
import type { User } from '../protocol/wire.js'
import type { Connection } from '../transport/connection.js'
import type { Connections } from '../transport/connections.js'
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
    await this.#control.send(command)
    return this.apply(command)
  }

  /** Runs `command` on this server's sockets (another server sent it, or {@link run} did). */
  apply (command: ControlCommand): number {
    if (this.#hub.closed) return 0
    switch (command.type) {
      case 'disconnect': return this.#disconnect(command)
      case 'remove': return this.#remove(command.room, command.userId, command.reason)
      case 'add': return this.#add(command.room, command.userId, command.with)
      default: return 0
    }
  }

  #disconnect (command: Extract<ControlCommand, { type: 'disconnect' }>): number {
    let targets: Connection[]
    if (typeof command.clientId === 'string') {
      const conn = this.#connections.byKey(command.clientId)
      targets = conn === undefined ? [] : [conn]
    } else {
      targets = this.#connections.ofUser(command.userId)
    }
    let closed = 0
    for (const conn of targets) {
      if (conn.closedByServer) continue
      closed++
      conn.close(CloseCode.DISCONNECTED, command.reason).catch(() => {})
    }
    return closed
  }

  #remove (room: string, userId: string, message: string | undefined): number {
    let removed = 0
    for (const conn of this.#connections.ofUser(userId)) {
      if (!conn.inRoom(room)) continue
      removed++
      conn.enqueue(async () => {
        this.#hub.leave(conn, room, { removed: message === undefined ? {} : { message } })
      })
    }
    return removed
  }

  #add (room: string, userId: string, direct: User | undefined): number {
    let added = 0
    for (const conn of this.#connections.ofUser(userId)) {
      if (conn.inRoom(room) || conn.closedByServer) continue
      added++
      conn.enqueue(async () => {
        // It may have joined by itself meanwhile: that join answered already.
        if (!conn.inRoom(room)) await this.#hub.join(conn, room, undefined, direct)
      })
    }
    return added
  }
}
