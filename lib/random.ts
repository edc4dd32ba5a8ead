import { randomBytes } from 'node:crypto'

/** `bytes` fresh random bytes from the CSPRNG, encoded. */
export function randomString (bytes: number, encoding: 'base64url' | 'hex'): string {
  return randomBytes(bytes).toString(encoding)
}

/** 12 random bytes, base64url: unique across processes without coordination. */
export function randomId (): string {
  return randomString(12, 'base64url')
}
