import WebSocket from 'ws'

/**
 * Starts the close handshake and terminates the socket if the peer has not
 * answered within `timeoutMs`, so a peer that stopped reading cannot hold
 * the socket (and what is buffered for it) for long. Resolves once the socket
 * is closed: a terminated socket emits 'close' a tick later, once its TCP
 * socket is destroyed, so nothing (socket or ws timer) outlives the wait.
 */
export async function closeSocket (socket: WebSocket, code: number, reason: string, timeoutMs: number): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => socket.terminate(), timeoutMs)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
    socket.close(code, reason)
  })
}
