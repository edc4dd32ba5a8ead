import type { Stats } from '../stats.js'
import type { Connection } from './connection.js'

/** This server's open chat sockets: liveness checks and shutdown. */
export class Connections {
  readonly #open = new Set<Connection>()
  readonly #stats: Stats

  constructor (stats: Stats) {
    this.#stats = stats
  }

  get size (): number {
    return this.#open.size
  }

  add (conn: Connection): void {
    this.#open.add(conn)
  }

  /** Whether it was open. */
  delete (conn: Connection): boolean {
    return this.#open.delete(conn)
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
