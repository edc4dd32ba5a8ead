import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'

/**
 * A TCP proxy on a free loopback port in front of `127.0.0.1:<target>`, for
 * tests that cut one client off from a server (Redis, say) while others keep
 * talking to it directly. A cut destroys every open connection and refuses
 * new ones until it is over; the port stays bound, so the client's reconnects
 * find it again afterwards.
 */
export class TcpProxy {
  readonly port: number
  readonly #server: Server
  readonly #target: number
  readonly #sockets = new Set<Socket>()
  #cutUntil = 0
  #cutTimer: NodeJS.Timeout | undefined
  #healed: Array<() => void> = []
  #closed = false
  readonly #delayMs: number
  readonly #timers = new Set<NodeJS.Timeout>()
  /** Connections refused during cuts, to tell a test that the client did try. */
  refused = 0

  private constructor (server: Server, port: number, target: number, delayMs: number) {
    this.#server = server
    this.port = port
    this.#target = target
    this.#delayMs = delayMs
  }

  /**
   * Listens on a free loopback port and forwards each connection to `target`;
   * with `delayMs`, every chunk is held that long in each direction (a
   * server further away), in order.
   */
  static async start (target: number, { delayMs = 0 }: { delayMs?: number } = {}): Promise<TcpProxy> {
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const proxy = new TcpProxy(server, (server.address() as { port: number }).port, target, delayMs)
    server.on('connection', (socket) => proxy.#accept(socket))
    return proxy
  }

  /** `redis://` URL of the proxy, for a client that should go through it. */
  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Whether a cut is in progress. */
  get cutting (): boolean {
    return Date.now() < this.#cutUntil
  }

  /** Open client connections through the proxy. */
  get connections (): number {
    return this.#sockets.size / 2
  }

  #accept (client: Socket): void {
    if (this.#closed || this.cutting) {
      this.refused++
      client.resetAndDestroy()
      return
    }
    const upstream = connect(this.#target, '127.0.0.1')
    // Keep the pair together: when either end goes, the other goes too.
    const pair = [client, upstream]
    for (const socket of pair) {
      this.#sockets.add(socket)
      socket.setNoDelay(true)
      socket.on('error', () => {})
      socket.once('close', () => {
        this.#sockets.delete(socket)
        for (const other of pair) if (other !== socket) other.destroy()
      })
    }
    if (this.#delayMs === 0) {
      client.pipe(upstream)
      upstream.pipe(client)
      return
    }
    this.#forwardLate(client, upstream)
    this.#forwardLate(upstream, client)
  }

  // Timers of one duration fire in the order they were set, so chunks keep their order.
  #forwardLate (from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer)
        if (!to.destroyed) to.write(chunk)
      }, this.#delayMs)
      this.#timers.add(timer)
    })
    from.once('end', () => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer)
        to.end()
      }, this.#delayMs)
      this.#timers.add(timer)
    })
  }

  /**
   * Destroys every current connection (with a reset, as a broken link shows
   * up) and refuses new ones for `ms`. Resolves once connections are accepted
   * again.
   */
  async cut (ms: number): Promise<void> {
    if (this.#closed) throw new Error('the proxy is closed')
    this.#cutUntil = Math.max(this.#cutUntil, Date.now() + ms)
    for (const socket of [...this.#sockets]) socket.resetAndDestroy()
    clearTimeout(this.#cutTimer)
    this.#cutTimer = setTimeout(() => this.#heal(), Math.max(0, this.#cutUntil - Date.now()))
    await new Promise<void>((resolve) => this.#healed.push(resolve))
  }

  #heal (): void {
    this.#cutUntil = 0
    for (const resolve of this.#healed.splice(0)) resolve()
  }

  /** Destroys every connection and stops listening. Harmless twice. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#cutTimer)
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    this.#heal()
    for (const socket of [...this.#sockets]) socket.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** A proxy in front of `target` (adding `delayMs` each way when given), closed when the test ends. */
export async function startProxy (t: { teardown (fn: () => unknown): void }, target: number, options: { delayMs?: number } = {}): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(target, options)
  t.teardown(() => proxy.close())
  return proxy
}
