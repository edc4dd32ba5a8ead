import crypto from 'node:crypto'

// A client without an identity gets a random id. The welcome frame carries a
// token for it, so a reconnect (to any server sharing the secret) keeps the
// same id and presence sees one user, not a leave and a join.
//
// Every guest's connect signs a token. crypto.createHmac() makes a native
// object with a JS wrapper per call, which outlives young-generation GCs and
// grows V8's new space on a server taking many connections. The HMAC below
// (RFC 2104, SHA-256) is two one-shot hashes over buffers made once per
// secret; test/resume.test.ts checks it against createHmac.

const MAC_LENGTH = 22
const BLOCK = 64
const DIGEST = 32
/** Longest id, in UTF-8 bytes, signed without createHmac. */
const MAX_ID_BYTES = 1024

const oneShot = typeof crypto.hash === 'function' ? crypto.hash : null

/** Signs ids and checks tokens with one secret. */
export class ResumeSigner {
  readonly #secret: string
  /** (key ⊕ ipad) ‖ the id being signed. */
  readonly #inner: Buffer
  /** (key ⊕ opad) ‖ the inner digest. */
  readonly #outer: Buffer

  constructor (secret: string) {
    this.#secret = secret
    let key = Buffer.from(secret)
    if (key.length > BLOCK) key = crypto.createHash('sha256').update(key).digest()
    this.#inner = Buffer.alloc(BLOCK + MAX_ID_BYTES, 0x36)
    this.#outer = Buffer.alloc(BLOCK + DIGEST, 0x5c)
    for (let i = 0; i < key.length; i++) {
      this.#inner[i] ^= key[i]
      this.#outer[i] ^= key[i]
    }
  }

  #mac (id: string): string {
    if (oneShot === null || Buffer.byteLength(id) > MAX_ID_BYTES) {
      return crypto.createHmac('sha256', this.#secret).update(id).digest('base64url').slice(0, MAC_LENGTH)
    }
    const length = this.#inner.write(id, BLOCK)
    this.#outer.write(oneShot('sha256', this.#inner.subarray(0, BLOCK + length), 'hex'), BLOCK, 'hex')
    return oneShot('sha256', this.#outer, 'base64url').slice(0, MAC_LENGTH)
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
