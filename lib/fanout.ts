import type { RawSocket } from './ws-internals.js'

/**
 * One broadcast, encoded once and framed once: every recipient gets the same
 * bytes. `text` is there for sockets that must go through ws's own `send()`.
 */
export class Prepared {
  readonly text: string
  #frame: Buffer | null = null

  constructor (text: string) {
    this.text = text
  }

  /** The whole unmasked text frame (RFC 6455 §5.2): FIN + opcode 1, length, payload. */
  get frame (): Buffer {
    if (this.#frame !== null) return this.#frame
    const length = Buffer.byteLength(this.text)
    const header = length < 126 ? 2 : length < 65536 ? 4 : 10
    const frame = Buffer.allocUnsafe(header + length)
    frame[0] = 0x81
    if (header === 2) {
      frame[1] = length
    } else if (header === 4) {
      frame[1] = 126
      frame.writeUInt16BE(length, 2)
    } else {
      frame[1] = 127
      frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
      frame.writeUInt32BE(length >>> 0, 6)
    }
    frame.write(this.text, header, 'utf8')
    this.#frame = frame
    return frame
  }
}

// Sockets corked in this event-loop iteration. Each is corked on its first
// write and uncorked once when the iteration ends, so a burst of messages
// reaches each socket in one write (one system call) instead of one per message.
let corked: RawSocket[] = []
let flushScheduled = false

function flush (): void {
  const sockets = corked
  corked = []
  flushScheduled = false
  for (const socket of sockets) {
    (socket as RawSocket & { [kCorked]?: boolean })[kCorked] = false
    socket.uncork()
  }
}

const kCorked = Symbol('fastify-chat.corked')

/** Writes `frame` to `socket`, coalesced with everything else written to it in this iteration. */
export function writeCoalesced (socket: RawSocket, frame: Buffer): void {
  const marked = socket as RawSocket & { [kCorked]?: boolean }
  if (marked[kCorked] !== true) {
    marked[kCorked] = true
    socket.cork()
    corked.push(socket)
    if (!flushScheduled) {
      flushScheduled = true
      // setImmediate runs after this iteration's I/O callbacks: every message
      // handled in this iteration is in before the flush.
      setImmediate(flush)
    }
  }
  socket.write(frame)
}
