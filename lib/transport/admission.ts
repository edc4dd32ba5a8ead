import type { FastifyRequest } from 'fastify'
import type { ResolvedOptions } from '../options.js'
import type { RefusalReason } from '../stats.js'

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
 * until its chat socket closes, so upgrades still in flight count too.
 */
export class Admission {
  #opts: ResolvedOptions
  #open = 0
  // Open places per address, kept only when maxConnectionsPerIp is on:
  // asking a socket for its address makes Node keep it on every socket.
  #perIp = new Map<string, number>()
  // Admitted requests not yet upgraded, with their address (or null), by TCP socket (one
  // place per socket, however many requests it carries) or, for injected
  // ones, by request. Nothing listens on the TCP socket: a listener there
  // costs every idle socket memory. An upgrade that never completes (a bad
  // handshake, a client gone mid-way) leaves its entry here until a sweep
  // finds the socket destroyed.
  #inFlight = new Map<object, string | null>()
  #sweepAt = SWEEP_MIN

  constructor (opts: ResolvedOptions) {
    this.#opts = opts
  }

  /** Places taken: open chat sockets and upgrades in flight. */
  get total (): number {
    return this.#open + this.#inFlight.size
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
      // Over TLS an http: page on the same host (say, one injected into
      // the plain-HTTP site) must not use the visitor's cookies on the
      // secure socket. Over plain HTTP a TLS proxy may sit in front, so
      // both schemes pass.
      ok = sameHost(origin, request.headers.host) && !(request.protocol === 'https' && normalizeOrigin(origin)?.startsWith('http:') === true)
    }
    return ok ? null : { reason: 'origin', status: 403, message: SAME_HOST_ONLY }
  }

  /** Takes a place for `request`; a refusal when there is none. */
  admit (request: FastifyRequest): Refusal | null {
    const holder = holderOf(request)
    if (this.#inFlight.has(holder)) return null
    const { maxConnections, maxConnectionsPerIp } = this.#opts
    const ip = this.#ipOf(request)
    const ipFull = (): boolean => ip !== null && (this.#perIp.get(ip) ?? 0) >= maxConnectionsPerIp
    if (this.total >= maxConnections || ipFull()) {
      // Full, unless some of it is upgrades that will never complete.
      this.#sweep()
    }
    if (this.total >= maxConnections) {
      return { reason: 'server_full', status: 503, message: 'the chat is full, try again later' }
    }
    if (ipFull()) {
      return { reason: 'ip_full', status: 429, message: 'too many connections from this address' }
    }
    this.#take(ip)
    this.#inFlight.set(holder, ip)
    if (this.#inFlight.size >= this.#sweepAt) {
      // Amortized: sweeps get rarer as more upgrades are legitimately in flight.
      this.#sweep()
      this.#sweepAt = Math.max(SWEEP_MIN, 2 * this.#inFlight.size)
    }
    return null
  }

  /** `request` became a chat socket: its place is held until {@link closed}. */
  opened (request: FastifyRequest): void {
    const holder = holderOf(request)
    if (this.#inFlight.delete(holder)) {
      this.#open++
      return
    }
    // Not admitted here (or given back early): count it now so closed() balances.
    this.#open++
    this.#take(this.#ipOf(request))
  }

  /** The chat socket of `request` closed. */
  closed (request: FastifyRequest): void {
    this.#open--
    this.#drop(this.#ipOf(request))
  }

  /** Gives back the place of a request that will not become a chat socket (it was answered); safe to call more than once. */
  release (request: FastifyRequest): void {
    const holder = holderOf(request)
    if (!this.#inFlight.has(holder)) return
    const ip = this.#inFlight.get(holder) as string | null
    this.#inFlight.delete(holder)
    this.#drop(ip)
  }

  #sweep (): void {
    for (const [holder, ip] of this.#inFlight) {
      if ((holder as { destroyed?: unknown }).destroyed === true) {
        this.#inFlight.delete(holder)
        this.#drop(ip)
      }
    }
  }

  /** The address places are counted by, or null when nothing is counted per address. */
  #ipOf (request: FastifyRequest): string | null {
    return this.#opts.maxConnectionsPerIp > 0 ? request.ip : null
  }

  #take (ip: string | null): void {
    if (ip !== null) this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1)
  }

  #drop (ip: string | null): void {
    if (ip === null) return
    const left = (this.#perIp.get(ip) ?? 1) - 1
    if (left === 0) this.#perIp.delete(ip)
    else this.#perIp.set(ip, left)
  }
}

const SWEEP_MIN = 64

/** The TCP socket of a request, or the request itself when injected (no socket). */
function holderOf (request: FastifyRequest): object {
  return request.raw.socket ?? request.raw
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
