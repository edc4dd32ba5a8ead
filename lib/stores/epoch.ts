import { randomString } from '../random.js'

/** A fresh epoch: a room's history starts over under it. 48 random bits, base64url. */
export function newEpoch (): string {
  return randomString(6, 'base64url')
}
