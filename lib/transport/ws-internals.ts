// Everything that reaches past the public API of `ws`, of @fastify/websocket
// and of Node's http module under them lives here, each with a fallback where
// one exists, so an upgrade that changes the internals degrades to slower or
// later checks, or to more memory, instead of breaking.
// test/transport/ws-internals.test.ts fails loudly when what they use moves.
import type WebSocket from 'ws'

interface ReceiverInternals { _maxPayload?: unknown }
interface SocketInternals { _receiver?: ReceiverInternals | null }

/**
 * Lowers the largest frame this socket accepts, for a socket made by a
 * WebSocketServer whose `maxPayload` we do not control (the host app's).
 * Returns `false` when the internals are not there; the caller then checks
 * each message's size after the fact.
 */
export function setMaxPayload (socket: WebSocket, bytes: number): boolean {
  const receiver = (socket as unknown as SocketInternals)._receiver
  if (receiver == null || typeof receiver._maxPayload !== 'number') return false
  receiver._maxPayload = bytes
  return true
}

/** What fan-out needs of the stream under a WebSocket. */
export interface RawSocket {
  write (chunk: Buffer | string, encoding?: BufferEncoding): boolean
  cork (): void
  uncork (): void
  readonly writableLength: number
}

interface UpgradeResponse { socket?: unknown, detachSocket?: (socket: unknown) => void }
interface WebSocketInternals {
  _socket?: Partial<RawSocket> & { _httpMessage?: UpgradeResponse | null } | null
  _sender?: { _state?: unknown } | null
}

/**
 * The stream under a ws WebSocket, for writing pre-framed bytes to it
 * directly, or `null` when that is not safe: a compression extension is in
 * use (frames must then go through ws's Sender, which may queue them), or the
 * internals are not where we expect. Callers fall back to `socket.send()`.
 *
 * Writing beside ws's Sender keeps frames in order because, without
 * compression, the Sender writes each frame synchronously to this stream.
 */
export function rawSocketOf (socket: WebSocket): RawSocket | null {
  if (socket.extensions !== '') return null
  const internals = socket as unknown as WebSocketInternals
  const raw = internals._socket
  if (raw == null || typeof raw.write !== 'function' || typeof raw.cork !== 'function' || typeof raw.writableLength !== 'number') return null
  if (internals._sender == null || !('_state' in internals._sender)) return null
  return raw as RawSocket
}

/**
 * Lets go of the HTTP response @fastify/websocket attaches to the stream under
 * `socket` to route the upgrade through Fastify. Once the handshake is done
 * nothing writes to it (the reply is hijacked), yet the stream keeps it, and
 * through it the fastify reply and its listeners, for as long as the socket is
 * open: about 0.9 KiB on every idle socket. Returns `false` when the response
 * is not where we expect (nothing is released then).
 */
export function releaseUpgradeResponse (socket: WebSocket): boolean {
  const stream = (socket as unknown as WebSocketInternals)._socket
  const response = stream?._httpMessage
  if (response == null || response.socket !== stream || typeof response.detachSocket !== 'function') return false
  response.detachSocket(stream)
  return true
}

/**
 * Lets go of the bytes that came with the upgrade request, which
 * @fastify/websocket keeps on the raw request under its `ws-head` symbol to
 * hand to ws. ws has taken them by the time the route runs, but the request
 * stays reachable (it is `client.request` in hooks), and the buffer with it
 * holds the whole chunk the upgrade was read from: about 0.4 KiB on every
 * idle socket. Returns `false` when nothing is found there.
 */
export function releaseUpgradeHead (raw: object): boolean {
  const key = Object.getOwnPropertySymbols(raw).find((symbol) => symbol.description === 'ws-head')
  if (key === undefined || !Buffer.isBuffer((raw as Record<symbol, unknown>)[key])) return false
  return Reflect.deleteProperty(raw, key)
}

/**
 * Takes @fastify/websocket's own 'error' listener off a route's socket. On a
 * client's protocol error (a frame too large, invalid UTF-8) it logs at error
 * level and terminates the socket right after ws has queued its close frame,
 * which may then not reach the client (1006 instead of 1007 or 1009). ws
 * closes the socket by itself after an error; we count and log it at info.
 */
export function dropRouteErrorHandler (socket: WebSocket): void {
  socket.removeAllListeners('error')
}

/**
 * Takes `socket` out of the host's WebSocketServer client set. When the host
 * app registered @fastify/websocket itself, its preClose closes every tracked
 * client without a code on shutdown; untracked, our sockets get our 1001.
 * `clients` is documented, but removing from it is not.
 */
export function untrackClient (server: { clients: Set<WebSocket> }, socket: WebSocket): void {
  server.clients.delete(socket)
}
