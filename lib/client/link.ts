import type { ClientFrame } from '../protocol/wire.js'
import type { Backoff } from './backoff.js'
import { askParams } from './params.js'
import type { Params } from './params.js'
import type { WebSocketLike } from './types.js'

/** How long `params()` may take before the attempt counts as failed. */
const PARAMS_TIMEOUT_MS = 10_000
// A socket that closed without a code (a fake, or an implementation that gives none): a drop.
const ABNORMAL = 1006

/** What a {@link Link} tells its owner. */
export interface LinkEvents {
  /** The URL of the next socket, with the app's `params` of this attempt. */
  url: (params: Params) => string
  /** A text frame on the current socket. */
  message: (data: string) => void
  /** The current socket closed; the owner calls `retry()` or `stop()`. */
  closed: (code: number, reason: string) => void
  /** An attempt failed or a socket dropped: the backoff starts once this returns. */
  retrying: () => void
}

/**
 * One socket at a time to the server: asks the app's `params` before each
 * attempt, and after a drop or a failed attempt waits a backoff delay that
 * grows with each failure until `opened()` says one got through.
 */
export class Link {
  #WebSocket: new (url: string) => WebSocketLike
  #backoff: Backoff
  #params: (() => Params | Promise<Params>) | undefined
  #on: LinkEvents
  #socket: WebSocketLike | null = null
  #attempt = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #cancelParams: () => void = () => {}
  #stopped = false

  constructor (WebSocket: new (url: string) => WebSocketLike, backoff: Backoff, params: (() => Params | Promise<Params>) | undefined, on: LinkEvents) {
    this.#WebSocket = WebSocket
    this.#backoff = backoff
    this.#params = params
    this.#on = on
  }

  /** The open (or opening) socket; `null` between attempts. */
  get socket (): WebSocketLike | null { return this.#socket }

  /** Opens a socket, once the app's `params` (if any) are in; a failing `params` is a failed attempt. */
  open (): void {
    if (this.#params === undefined) return this.#dial({})
    this.#cancelParams = askParams(this.#params, PARAMS_TIMEOUT_MS, (params) => this.#dial(params), () => this.retry())
  }

  /** The server took this attempt: the next drop starts the backoff over. */
  opened (): void {
    this.#attempt = 0
  }

  write (frame: ClientFrame): void {
    this.#socket?.send(JSON.stringify(frame))
  }

  /** Waits the backoff, then tries again: a socket dropped, or an attempt failed before one opened. */
  retry (): void {
    this.#socket = null
    this.#on.retrying()
    // The owner may stop for good from within `retrying` (a status listener closing the client, say).
    if (this.#stopped) return
    this.#timer = setTimeout(() => this.open(), this.#backoff.delay(this.#attempt++))
  }

  /** For good: closes the socket, if any, with `code`, and cancels any wait. */
  stop (code: number, reason: string): void {
    this.#stopped = true
    const socket = this.#socket
    this.#socket = null
    socket?.close(code, reason)
    clearTimeout(this.#timer)
    this.#cancelParams()
  }

  #dial (params: Params): void {
    if (typeof params !== 'object' || params === null) return this.retry()
    const socket = new this.#WebSocket(this.#on.url(params))
    this.#socket = socket
    socket.onmessage = (event: { data: unknown }) => {
      if (socket === this.#socket && typeof event.data === 'string') this.#on.message(event.data)
    }
    socket.onclose = (event: { code?: number, reason?: string }) => {
      if (socket !== this.#socket) return
      this.#socket = null
      this.#on.closed(event.code ?? ABNORMAL, event.reason ?? '')
    }
    // An error is always followed by close, which does the work.
    socket.onerror = () => {}
  }
}
