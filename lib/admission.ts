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
  #places = new WeakMap<FastifyRequest, Place>()

  constructor (opts: ResolvedOptions) {
    this.#opts = opts
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
    const place = new Place(this.#free, ip)
    // The TCP socket outlives the upgrade, so its close covers a refused
    // request, a failed handshake and a chat socket alike. Injected requests
    // have none and are released through release() when their WebSocket closes.
    const socket = request.raw.socket as NodeJS.EventEmitter | undefined
    if (socket !== undefined) socket.on('close', place.release)
    else this.#places.set(request, place)
    return null
  }

  /** Gives back the place taken for an injected `request`; safe to call more than once. */
  release (request: FastifyRequest): void {
    this.#places.get(request)?.release()
  }

  // One function for every place, rather than a closure per request.
  readonly #free = (ip: string): void => {
    this.#total--
    const left = (this.#perIp.get(ip) ?? 1) - 1
    if (left === 0) this.#perIp.delete(ip)
    else this.#perIp.set(ip, left)
  }
}

/** One admitted request's place, given back once. */
class Place {
  #free: ((ip: string) => void) | null
  #ip: string

  constructor (free: (ip: string) => void, ip: string) {
    this.#free = free
    this.#ip = ip
  }

  readonly release = (): void => {
    this.#free?.(this.#ip)
    this.#free = null
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
