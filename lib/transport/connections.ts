import type { Stats } from '../stats.js'
import type { Connection } from './connection.js'

/** This server's open chat sockets, found by user and by socket id: liveness checks, moderation and shutdown. */
export class Connections {
  readonly #open = new Set<Connection>()
  // One socket per user is the common case: a Set only from the second.
  readonly #byUser = new Map<string, Connection | Set<Connection>>()
  readonly #byKey = new Map<string, Connection>()
  readonly #stats: Stats

  constructor (stats: Stats) {
    this.#stats = stats
  }

  get size (): number {
    return this.#open.size
  }

  add (conn: Connection): void {
    if (this.#open.has(conn)) return
    this.#open.add(conn)
    this.#byKey.set(conn.key, conn)
    const other = this.#byUser.get(conn.id)
    if (other === undefined) this.#byUser.set(conn.id, conn)
    else if (other instanceof Set) other.add(conn)
    else this.#byUser.set(conn.id, new Set([other, conn]))
  }

  has (conn: Connection): boolean {
    return this.#open.has(conn)
  }

  /** Whether it was open. */
  delete (conn: Connection): boolean {
    if (!this.#open.delete(conn)) return false
    this.#byKey.delete(conn.key)
    const sockets = this.#byUser.get(conn.id)
    if (sockets === conn) {
      this.#byUser.delete(conn.id)
    } else if (sockets instanceof Set) {
      sockets.delete(conn)
      if (sockets.size === 1) this.#byUser.set(conn.id, sockets.values().next().value as Connection)
    }
    return true
  }

  /** The open sockets of user `id` on this server (a copy). */
  ofUser (id: string): Connection[] {
    const sockets = this.#byUser.get(id)
    return sockets === undefined ? [] : sockets instanceof Set ? [...sockets] : [sockets]
  }

  /** The open socket whose `clientId` is `key`. */
  byKey (key: string): Connection | undefined {
    return this.#byKey.get(key)
  }

  /** One heartbeat: terminates sockets that missed the previous ping, pings the rest. */
  heartbeat (): void {
    for (const conn of this.#open) {
      const { socket } = conn
      if (!conn.alive) {
        this.#stats.drop('dead_peer', conn.request)
        socket.terminate()
        continue
      }
      conn.alive = false
      if (socket.readyState === socket.OPEN) socket.ping()
    }
  }

  /** Closes every socket with `code`; each is terminated if its close handshake takes longer than `closeTimeout`. */
  async closeAll (code: number, reason: string): Promise<void> {
    await Promise.all([...this.#open].map(async (conn) => await conn.close(code, reason)))
  }
}
