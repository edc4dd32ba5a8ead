import { randomFillSync } from 'node:crypto'

// Every connection draws an id and maybe a guest name. randomBytes() makes a
// Buffer per call, each with its own native backing store that lives until
// a GC finds it; drawing from one pool, refilled from the CSPRNG when spent,
// makes none. Each pool byte is handed out once.
const pool = Buffer.allocUnsafeSlow(4096)
let used = pool.length

/** `bytes` fresh random bytes (at most 256), encoded. */
export function randomString (bytes: number, encoding: 'base64url' | 'hex'): string {
  if (!(bytes >= 0 && bytes <= 256)) throw new RangeError(`randomString: ${bytes} bytes, at most 256`)
  if (used + bytes > pool.length) {
    randomFillSync(pool)
    used = 0
  }
  const at = used
  used += bytes
  return pool.toString(encoding, at, at + bytes)
}

/** 12 random bytes, base64url: unique across processes without coordination. */
export function randomId (): string {
  return randomString(12, 'base64url')
}
