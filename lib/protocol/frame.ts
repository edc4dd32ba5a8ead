// WebSocket frame bytes (RFC 6455 §5.2), written by us rather than by ws so
// that a broadcast is framed once for every recipient.

/** Bytes of the header of an unmasked frame with a `length`-byte payload. */
export function headerLength (length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10
}

/** Writes an unmasked text frame (FIN + opcode 1, length, payload) at `at`; returns where it ends. */
export function writeFrame (target: Buffer, at: number, text: string, length: number): number {
  target[at] = 0x81
  if (length < 126) {
    target[at + 1] = length
    at += 2
  } else if (length < 65536) {
    target[at + 1] = 126
    target.writeUInt16BE(length, at + 2)
    at += 4
  } else {
    target[at + 1] = 127
    target.writeUInt32BE(Math.floor(length / 2 ** 32), at + 2)
    target.writeUInt32BE(length >>> 0, at + 6)
    at += 10
  }
  return at + target.write(text, at, length, 'utf8')
}

/** One text frame, for a single socket. */
export function frameText (text: string): Buffer {
  const length = Buffer.byteLength(text)
  const frame = Buffer.allocUnsafe(headerLength(length) + length)
  writeFrame(frame, 0, text, length)
  return frame
}
