// Everything that reaches past the public API of `ws` lives here, each with a
// public-API fallback, so a `ws` upgrade that changes the internals degrades
// to slower or later checks instead of breaking. test/ws-internals.test.ts
// fails loudly when these fields move.
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
