// Just enough RFC 6455 for a load generator: the client side of the HTTP/1.1
// upgrade, masked client frames, and an incremental reader of (unmasked)
// server frames that hands over either the whole payload or only its first
// bytes, so counting clients never copy what they do not look at.
import { createHash, randomBytes, randomFillSync } from 'node:crypto'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

export const OP_TEXT = 1
export const OP_BINARY = 2
export const OP_CLOSE = 8
export const OP_PING = 9
export const OP_PONG = 10

/** Bytes of a payload that a counting client keeps to tell frame kinds apart. */
export const PREFIX = 16
/** A sampling client keeps whole payloads up to this size (messages are ~200 bytes). */
const MAX_KEEP = 64 * 1024

/** The upgrade request and the Sec-WebSocket-Accept value the server must answer with. */
export function upgradeRequest (host, port, path) {
  const key = randomBytes(16).toString('base64')
  const request = `GET ${path} HTTP/1.1\r\n` +
    `Host: ${host}:${port}\r\n` +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    `Sec-WebSocket-Key: ${key}\r\n` +
    'Sec-WebSocket-Version: 13\r\n\r\n'
  const accept = createHash('sha1').update(key + GUID).digest('base64')
  return { request, accept }
}

/**
 * Checks an upgrade response head (up to and without the blank line).
 * Returns null when it is a valid 101, or a short reason ("http 503", "bad accept").
 */
export function checkUpgradeResponse (head, accept) {
  const status = /^HTTP\/1\.1 (\d{3})/.exec(head)
  if (status === null) return 'bad response'
  if (status[1] !== '101') return `http ${status[1]}`
  const got = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)
  if (got === null || got[1] !== accept) return 'bad accept'
  return null
}

/** Size of a masked client frame carrying `length` payload bytes. */
export function clientFrameSize (length) {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + 4 + length
}

const maskPool = Buffer.allocUnsafe(4096)
let maskAt = maskPool.length

function nextMask () {
  if (maskAt + 4 > maskPool.length) {
    randomFillSync(maskPool)
    maskAt = 0
  }
  maskAt += 4
  return maskAt - 4
}

/**
 * Writes a masked client frame whose payload is the latin1 string `text`
 * (callers only pass ASCII) into `out` at `at`; returns the offset after it.
 */
export function writeClientFrame (out, at, opcode, text) {
  const length = text.length
  out[at++] = 0x80 | opcode
  if (length < 126) {
    out[at++] = 0x80 | length
  } else if (length < 65536) {
    out[at++] = 0x80 | 126
    out.writeUInt16BE(length, at)
    at += 2
  } else {
    out[at++] = 0x80 | 127
    out.writeUInt32BE(Math.floor(length / 2 ** 32), at)
    out.writeUInt32BE(length >>> 0, at + 4)
    at += 8
  }
  const m = nextMask()
  const m0 = maskPool[m]; const m1 = maskPool[m + 1]; const m2 = maskPool[m + 2]; const m3 = maskPool[m + 3]
  out[at] = m0; out[at + 1] = m1; out[at + 2] = m2; out[at + 3] = m3
  at += 4
  out.latin1Write(text, at, length)
  for (let i = 0; i < length; i += 4) {
    out[at + i] ^= m0
    if (i + 1 < length) out[at + i + 1] ^= m1
    if (i + 2 < length) out[at + i + 2] ^= m2
    if (i + 3 < length) out[at + i + 3] ^= m3
  }
  return at + length
}

/** A masked frame with a binary payload (pong and close answers). */
export function clientFrame (opcode, payload = Buffer.alloc(0)) {
  const out = Buffer.allocUnsafe(clientFrameSize(payload.length))
  writeClientFrame(out, 0, opcode, payload.toString('latin1'))
  return out
}

/**
 * Incremental reader of server frames. For each frame it calls
 * `onFrame(opcode, buf, start, end, length)`: `buf[start, end)` is the whole
 * payload when it came in one chunk, when `keep` is set (a sampling client)
 * or for control frames; otherwise only its first PREFIX bytes. `buf` is only
 * valid during the call: chunks may live in a buffer reused for every read.
 * Continuation frames are reported with opcode 0 (the servers measured here
 * do not fragment).
 */
export class FrameReader {
  /** `maxKeep`: the largest payload a keeping reader hands over whole (larger ones: their first PREFIX bytes). */
  constructor (onFrame, keep = false, maxKeep = MAX_KEEP) {
    this.onFrame = onFrame
    this.keep = keep
    this.maxKeep = maxKeep
    this.head = Buffer.allocUnsafe(14)
    this.headLength = 0
    this.remaining = 0
    this.opcode = 0
    this.length = 0
    this.keepThis = false
    this.parts = null
    this.prefix = null
    this.prefixLength = 0
  }

  push (buf) {
    const n = buf.length
    let i = 0
    while (i < n) {
      if (this.remaining > 0) {
        i = this.#continuePayload(buf, i, n)
        continue
      }
      if (this.headLength === 0 && n - i >= 2) {
        const b1 = buf[i + 1]
        const l7 = b1 & 0x7f
        const size = (l7 < 126 ? 2 : l7 === 126 ? 4 : 10) + (b1 & 0x80 ? 4 : 0)
        if (n - i >= size) {
          const length = l7 < 126 ? l7 : l7 === 126 ? buf.readUInt16BE(i + 2) : buf.readUInt32BE(i + 2) * 2 ** 32 + buf.readUInt32BE(i + 6)
          const opcode = buf[i] & 0x0f
          i += size
          if (n - i >= length) {
            this.onFrame(opcode, buf, i, i + length, length)
            i += length
          } else {
            this.#startPayload(opcode, length)
          }
          continue
        }
      }
      // A header split across chunks: gather it byte by byte.
      this.head[this.headLength++] = buf[i++]
      if (this.headLength < 2) continue
      const b1 = this.head[1]
      const l7 = b1 & 0x7f
      const size = (l7 < 126 ? 2 : l7 === 126 ? 4 : 10) + (b1 & 0x80 ? 4 : 0)
      if (this.headLength < size) continue
      const h = this.head
      const length = l7 < 126 ? l7 : l7 === 126 ? h.readUInt16BE(2) : h.readUInt32BE(2) * 2 ** 32 + h.readUInt32BE(6)
      const opcode = h[0] & 0x0f
      this.headLength = 0
      if (length === 0) this.onFrame(opcode, h, 0, 0, 0)
      else if (n - i >= length) {
        this.onFrame(opcode, buf, i, i + length, length)
        i += length
      } else {
        this.#startPayload(opcode, length)
      }
    }
  }

  #startPayload (opcode, length) {
    this.opcode = opcode
    this.length = length
    this.remaining = length
    this.keepThis = opcode >= 8 || (this.keep && length <= this.maxKeep)
    if (this.keepThis) this.parts = []
    else {
      this.prefix ??= Buffer.allocUnsafe(PREFIX)
      this.prefixLength = 0
    }
  }

  #continuePayload (buf, i, n) {
    const take = Math.min(this.remaining, n - i)
    if (this.keepThis) {
      this.parts.push(Buffer.from(buf.subarray(i, i + take)))
    } else if (this.prefixLength < PREFIX) {
      const copy = Math.min(PREFIX - this.prefixLength, take)
      buf.copy(this.prefix, this.prefixLength, i, i + copy)
      this.prefixLength += copy
    }
    this.remaining -= take
    if (this.remaining === 0) {
      if (this.keepThis) {
        const payload = Buffer.concat(this.parts)
        this.parts = null
        this.onFrame(this.opcode, payload, 0, payload.length, this.length)
      } else {
        this.onFrame(this.opcode, this.prefix, 0, this.prefixLength, this.length)
      }
    }
    return i + take
  }
}
