import { createHmac, timingSafeEqual } from 'node:crypto'

// A client without an identity gets a random id. The welcome frame carries a
// token for it, so a reconnect (to any server sharing the secret) keeps the
// same id and presence sees one user, not a leave and a join.

const MAC_LENGTH = 22

function mac (id: string, secret: string): string {
  return createHmac('sha256', secret).update(id).digest('base64url').slice(0, MAC_LENGTH)
}

/** A token that proves the holder was given `id`. */
export function resumeToken (id: string, secret: string): string {
  return `${id}.${mac(id, secret)}`
}

/** The id a token was made for, or `null` if it was not made with `secret`. */
export function resumeId (token: unknown, secret: string): string | null {
  if (typeof token !== 'string' || token.length > 256) return null
  const dot = token.lastIndexOf('.')
  if (dot < 1) return null
  const id = token.slice(0, dot)
  const given = Buffer.from(token.slice(dot + 1))
  const expected = Buffer.from(mac(id, secret))
  return given.length === expected.length && timingSafeEqual(given, expected) ? id : null
}
