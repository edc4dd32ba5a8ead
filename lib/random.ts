import { randomFillSync } from 'node:crypto'

// Every connection takes a few ids. One call into the CSPRNG per id costs
// more than the id (a syscall and a buffer each, measured in the fill
// bench), so ids come out of a pool filled a few kilobytes at a time; each
// byte is handed out once.
const POOL_SIZE = 4096
const pool = Buffer.allocUnsafe(POOL_SIZE)
let used = POOL_SIZE

/** `bytes` fresh random bytes from the CSPRNG, encoded. */
export function randomString (bytes: number, encoding: 'base64url' | 'hex'): string {
  if (bytes > POOL_SIZE) return randomFillSync(Buffer.allocUnsafe(bytes)).toString(encoding)
  if (used + bytes > POOL_SIZE) {
    randomFillSync(pool)
    used = 0
  }
  const start = used
  used += bytes
  return pool.toString(encoding, start, used)
}

/** 12 random bytes, base64url: unique across processes without coordination. */
export function randomId (): string {
  return randomString(12, 'base64url')
}
