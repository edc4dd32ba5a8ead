import crypto from 'node:crypto'

// A client without an identity gets a random id. The welcome frame carries a
// token for it, so a reconnect (to any server sharing the secret) keeps the
// same id and presence sees one user, not a leave and a join.

const MAC_LENGTH = 22

/** Signs ids and checks tokens with one secret. */
export class ResumeSigner {
  readonly #secret: string

  constructor (secret: string) {
    this.#secret = secret
  }

  #mac (id: string): string {
    return crypto.createHmac('sha256', this.#secret).update(id).digest('base64url').slice(0, MAC_LENGTH)
  }

  /** A token that proves the holder was given `id`. */
  token (id: string): string {
    return `${id}.${this.#mac(id)}`
  }

  /** The id a token was made for, or `null` if it was not made with this secret. */
  id (token: unknown): string | null {
    if (typeof token !== 'string' || token.length > 256) return null
    const dot = token.lastIndexOf('.')
    if (dot < 1) return null
    const id = token.slice(0, dot)
    const given = Buffer.from(token.slice(dot + 1))
    const expected = Buffer.from(this.#mac(id))
    return given.length === expected.length && crypto.timingSafeEqual(given, expected) ? id : null
  }
}
