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

/**
 * The header of a text frame for a single socket, as a Latin-1 string, when
 * the text is ASCII (as JSON of ASCII names and texts is): a frame written
 * from strings needs no Buffer, and the large ones (a `joined` frame listing
 * a room's users) would each need memory outside the JS heap. Null when the
 * text needs {@link frameText} instead. Write both with the 'latin1' encoding.
 */
export function asciiHeader (text: string): string | null {
  const { length } = text
  if (Buffer.byteLength(text) !== length) return null
  if (length < 126) return String.fromCharCode(0x81, length)
  if (length < 65536) return String.fromCharCode(0x81, 126, length >>> 8, length & 0xff)
  return null
}

/** One text frame, for a single socket. */
export function frameText (text: string): Buffer {
  const length = Buffer.byteLength(text)
  const frame = Buffer.allocUnsafe(headerLength(length) + length)
  writeFrame(frame, 0, text, length)
  return frame
}
