import type { FastifyRequest } from 'fastify'
import type { ResolvedOptions } from './options.js'
import type { RefusalReason } from './stats.js'

/** Why an upgrade is refused, and with which HTTP status. */
export interface Refusal {
  reason: RefusalReason
  status: number
  message: string
}

const SAME_HOST_ONLY = 'cross-site WebSocket requests are not allowed'

/**
 * Decides, before a socket opens, whether an upgrade may proceed: the origin
 * check and the connection caps. Counts every admitted request from admission
 * until its TCP socket closes, so upgrades still in flight count too.
 */
export class Admission {
  #opts: ResolvedOptions
  #total = 0
  #perIp = new Map<string, number>()
  // The address each holder of a place came from: a TCP socket, or the
  // request of an injected socket (which has none). One place per TCP
  // socket, however many upgrade requests it carries.
  #places = new WeakMap<object, string>()
  // One 'close' listener for every TCP socket rather than a closure each:
  // every byte counts per socket on a server with many idle ones.
  readonly #onSocketClose: (this: object) => void

  constructor (opts: ResolvedOptions) {
    this.#opts = opts
    const free = this.#free
    this.#onSocketClose = function (this: object) { free(this) }
  }

  /** Sockets admitted and not yet closed. */
  get total (): number {
    return this.#total
  }

  async checkOrigin (request: FastifyRequest): Promise<Refusal | null> {
    const origin = request.headers.origin
    const allowed = this.#opts.allowedOrigins
    // Browsers always send Origin; a request without one is not a page acting
    // with a visitor's cookies.
    if (origin === undefined) return null
    let ok: boolean
    if (typeof allowed === 'function') {
      ok = await allowed(origin, request) === true
    } else if (allowed !== null) {
      ok = allowed.has(normalizeOrigin(origin) ?? '')
    } else {
      ok = sameHost(origin, request.headers.host)
    }
    return ok ? null : { reason: 'origin', status: 403, message: SAME_HOST_ONLY }
  }

  /** Takes a place for `request`, released when its socket closes; a refusal when there is none. */
  admit (request: FastifyRequest): Refusal | null {
    // The TCP socket outlives the upgrade, so its close covers a refused
    // request, a failed handshake and a chat socket alike. Injected requests
    // have none and are released through release() when their WebSocket closes.
    const socket = request.raw.socket as NodeJS.EventEmitter | undefined
    const holder: object = socket ?? request
    if (this.#places.has(holder)) return null
    if (this.#total >= this.#opts.maxConnections) {
      return { reason: 'server_full', status: 503, message: 'the chat is full, try again later' }
    }
    const ip = request.ip
    const perIp = this.#perIp.get(ip) ?? 0
    if (this.#opts.maxConnectionsPerIp > 0 && perIp >= this.#opts.maxConnectionsPerIp) {
      return { reason: 'ip_full', status: 429, message: 'too many connections from this address' }
    }
    this.#total++
    this.#perIp.set(ip, perIp + 1)
    this.#places.set(holder, ip)
    socket?.on('close', this.#onSocketClose)
    return null
  }

  /** Gives back the place taken for an injected `request`; safe to call more than once. */
  release (request: FastifyRequest): void {
    this.#free(request)
  }

  readonly #free = (holder: object): void => {
    const ip = this.#places.get(holder)
    if (ip === undefined) return
    this.#places.delete(holder)
    this.#total--
    const left = (this.#perIp.get(ip) ?? 1) - 1
    if (left === 0) this.#perIp.delete(ip)
    else this.#perIp.set(ip, left)
  }
}

function normalizeOrigin (origin: string): string | null {
  try {
    const normalized = new URL(origin).origin
    return normalized === 'null' ? null : normalized
  } catch {
    return null
  }
}

/** Whether the Origin's host and port are the request's Host (`null` origins never are). */
function sameHost (origin: string, host: string | undefined): boolean {
  if (host === undefined || normalizeOrigin(origin) === null) return false
  try {
    const fromOrigin = new URL(origin)
    // Parse Host with the origin's scheme so default ports compare equal.
    return fromOrigin.host === new URL(`${fromOrigin.protocol}//${host}`).host
  } catch {
    return false
  }
}
