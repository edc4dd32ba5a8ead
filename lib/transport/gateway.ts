import type { FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Admission, Refusal } from './admission.js'
import { Connection, QUEUE_HIGH } from './connection.js'
import type { ConnectionContext } from './connection.js'
import { CloseCode } from '../close-codes.js'
import type { Hub } from '../chat/hub.js'
import type { Identity, ResolvedOptions } from '../options.js'
import { parseSinceParam, peekCid } from '../protocol/codec.js'
import { ROOM_RULE, isRoomName, sanitizeName } from '../protocol/text.js'
import type { WelcomeFrame } from '../protocol/wire.js'
import { randomId, randomString } from '../random.js'
import { TokenBucket } from './rate-limit.js'
import { ResumeSigner } from './resume.js'
import type { Session } from '../chat/session.js'
import type { Stats } from '../stats.js'
import { closeSocket } from './close.js'
import { dropRouteErrorHandler, releaseUpgradeHead, releaseUpgradeResponse, setMaxPayload } from './ws-internals.js'

// Past QUEUE_HIGH waiting frames the server stops reading from a socket.
// This hard cap guards against a ws that goes on handing over frames after
// pause(): such a client is closed with 1008.
const MAX_QUEUED_FRAMES = 4096

interface ConnectQuery {
  name?: unknown
  room?: unknown
  since?: unknown
  resume?: unknown
}

function guestName (): string {
  return `guest-${randomString(2, 'hex')}`
}

/** ws's error codes for frames over `maxPayload`. */
const TOO_LARGE_CODES = new Set(['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH', 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH'])

export interface GatewayParts {
  opts: ResolvedOptions
  hub: Hub
  session: Session
  admission: Admission
  stats: Stats
  /** Whether our own WebSocketServer enforces `maxPayload` already. */
  payloadEnforced: boolean
  /** Signs resume tokens. */
  secret: string
}

/**
 * The HTTP side of a chat socket: the hooks that admit or refuse an upgrade
 * before any socket opens, and the handler that turns an accepted socket
 * into a hub connection.
 */
export class Gateway {
  #p: GatewayParts
  #ctx: ConnectionContext
  readonly #signer: ResumeSigner
  #identities = new WeakMap<FastifyRequest, Identity>()
  // Each socket's connection, for listeners shared by every socket: a
  // closure per socket and event would cost memory on every idle socket.
  #connections = new WeakMap<WebSocket, Connection>()
  readonly #listeners: {
    error: (this: WebSocket, err: Error & { code?: string }) => void
    pong: (this: WebSocket) => void
    close: (this: WebSocket, code: number) => void
    message: (this: WebSocket, data: Buffer, isBinary: boolean) => void
  }

  constructor (parts: GatewayParts) {
    this.#p = parts
    this.#signer = new ResumeSigner(parts.secret)
    const max = parts.opts.maxBufferedBytes
    // A socket with this much waiting is behind: a quarter of the cap, and at
    // most 64 KiB, a few hundred messages, so shedding starts before latency grows.
    this.#ctx = { maxBufferedBytes: max, behindBytes: Math.min(max / 4, 64 * 1024), closeTimeout: parts.opts.closeTimeout, stats: parts.stats }
    const connections = this.#connections
    const message = this.#message
    const { hub, stats, admission } = parts
    // ws calls listeners with the socket as `this`.
    this.#listeners = {
      error (err) {
        const conn = connections.get(this) as Connection
        stats.drop(TOO_LARGE_CODES.has(err.code ?? '') ? 'too_large' : 'invalid', conn.request)
        conn.request.log.info({ err }, 'fastify-chat: protocol error from client')
      },
      pong () {
        (connections.get(this) as Connection).alive = true
      },
      close (code) {
        const conn = connections.get(this) as Connection
        hub.remove(conn)
        admission.closed(conn.request)
        stats.closed(conn.request, code)
      },
      message (data, isBinary) {
        message(connections.get(this) as Connection, data, isBinary)
      }
    }
  }

  async #refuse (request: FastifyRequest, reply: FastifyReply, refusal: Refusal): Promise<FastifyReply> {
    this.#p.admission.release(request)
    this.#p.stats.refuse(refusal.reason, request)
    // An Origin refusal is a misconfiguration more often than an attack: name both sides.
    const detail = refusal.reason === 'origin' ? { origin: request.headers.origin, host: request.headers.host } : {}
    request.log.info({ reason: refusal.reason, ...detail }, 'fastify-chat: upgrade refused')
    return await reply.code(refusal.status).send({ statusCode: refusal.status, error: refusal.reason, message: refusal.message })
  }

  /** onRequest: origin, shutdown and the connection caps, cheapest first. */
  readonly admit = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const { admission, hub } = this.#p
    if (hub.closed) return await this.#refuse(request, reply, { reason: 'closing', status: 503, message: 'the server is shutting down' })
    let refusal: Refusal | null
    try {
      refusal = await admission.checkOrigin(request)
    } catch (err) {
      request.log.error({ err }, 'fastify-chat: allowedOrigins threw')
      refusal = { reason: 'origin', status: 403, message: 'origin check failed' }
    }
    refusal ??= admission.admit(request)
    if (refusal !== null) return await this.#refuse(request, reply, refusal)
  }

  /** preValidation: the user's `identify`. */
  readonly identify = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const { identify } = this.#p.opts
    if (identify === null) return
    let identity
    try {
      identity = await identify(request)
    } catch (err) {
      const status = (err as { statusCode?: unknown })?.statusCode
      const code = typeof status === 'number' && status >= 400 && status < 500 ? status : 401
      request.log.warn({ err }, 'fastify-chat: identify threw, refusing the connection')
      return await this.#refuse(request, reply, { reason: 'unauthorized', status: code, message: 'not identified' })
    }
    if (identity === false || typeof identity !== 'object' || identity === null) {
      return await this.#refuse(request, reply, { reason: 'forbidden', status: 403, message: 'connection refused' })
    }
    const { expiresAt } = identity
    if (expiresAt !== undefined) {
      if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
        request.log.error({ expiresAt }, 'fastify-chat: identify returned an expiresAt that is not a number of milliseconds')
        return await this.#refuse(request, reply, { reason: 'unauthorized', status: 500, message: 'not identified' })
      }
      if (expiresAt <= Date.now()) {
        return await this.#refuse(request, reply, { reason: 'unauthorized', status: 401, message: 'session expired' })
      }
    }
    this.#identities.set(request, identity)
  }

  /** onResponse: a request answered without an upgrade (refused by any hook) gives its place back. */
  readonly answered = async (request: FastifyRequest): Promise<void> => {
    this.#p.admission.release(request)
  }

  /** The WebSocket route handler. Synchronous: listeners go on before anything async. */
  readonly connect = (socket: WebSocket, request: FastifyRequest): void => {
    const { opts, hub, session, admission, stats } = this.#p
    admission.opened(request)
    if (hub.closed) {
      // The upgrade finished after shutdown began (identify was still running).
      stats.refuse('closing', request)
      closeSocket(socket, CloseCode.GOING_AWAY, 'server shutting down', opts.closeTimeout)
        .then(() => admission.closed(request), () => {})
      return
    }
    const payloadEnforced = this.#p.payloadEnforced || setMaxPayload(socket, opts.maxPayload)
    releaseUpgradeResponse(socket)
    releaseUpgradeHead(request.raw)

    const query = (request.query ?? {}) as ConnectQuery
    const identity = this.#identities.get(request) ?? {}
    const identified = typeof identity.id === 'string' && identity.id !== ''
    const id = identified ? identity.id as string : this.#signer.id(query.resume) ?? randomId()
    const askedName = identity.name ?? query.name
    const name = sanitizeName(askedName)
    const bucket = opts.rateLimit === null ? null : new TokenBucket(opts.rateLimit)
    const conn = new Connection(socket, request, id, name ?? guestName(), identity.data, this.#ctx, bucket)
    conn.sizeChecked = payloadEnforced
    conn.identified = identified

    this.#connections.set(socket, conn)
    // ws closes the socket itself on a protocol error; we only count and log.
    dropRouteErrorHandler(socket)
    socket.on('error', this.#listeners.error)
    if (opts.heartbeatInterval !== 0) socket.on('pong', this.#listeners.pong)
    socket.on('close', this.#listeners.close)
    socket.on('message', this.#listeners.message)

    hub.add(conn)
    stats.accept(request)
    const welcome: WelcomeFrame = { type: 'welcome', id: conn.id, clientId: conn.key, name: conn.name }
    if (!identified) welcome.resume = this.#signer.token(conn.id)
    if (identity.expiresAt !== undefined) {
      welcome.expiresAt = identity.expiresAt
      conn.expireAt(identity.expiresAt)
    }
    conn.send(welcome)
    if (askedName !== undefined && name === null) {
      conn.sendError('invalid_name', 'name must have 1 to 32 characters besides blanks and control characters; using a guest name')
    }

    const room = query.room ?? opts.defaultRoom
    if (room === null) return
    if (!isRoomName(room)) {
      conn.sendError('invalid_room', ROOM_RULE)
      return
    }
    const since = parseSinceParam(query.since) ?? undefined
    conn.enqueue(() => session.join(conn, room, since))
  }

  /** One frame from a client: the checks that need no parsing, then into the connection's queue. */
  readonly #message = (conn: Connection, data: Buffer, isBinary: boolean): void => {
    const { opts, session, stats } = this.#p
    const { request, bucket } = conn
    conn.alive = true
    stats.messagesIn++
    if (isBinary) {
      stats.drop('invalid', request)
      conn.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not supported')
      return
    }
    if (!conn.sizeChecked && data.length > opts.maxPayload) {
      stats.drop('too_large', request)
      conn.close(CloseCode.MESSAGE_TOO_BIG, 'frame too large')
      return
    }
    const raw = data.toString()
    if (bucket !== null && !bucket.take()) {
      stats.drop('rate_limited', request)
      if (bucket.strikes >= (opts.rateLimit?.burst ?? 0)) {
        conn.close(CloseCode.POLICY_VIOLATION, 'rate limit exceeded')
      } else {
        conn.sendError('rate_limited', 'slow down: the message was not sent', peekCid(raw))
      }
      return
    }
    if (conn.queued >= MAX_QUEUED_FRAMES) {
      conn.close(CloseCode.POLICY_VIOLATION, 'too many frames in flight')
      return
    }
    if (conn.queued === QUEUE_HIGH) conn.socket.pause()
    conn.enqueue(async () => {
      try {
        await session.handle(conn, raw)
      } catch (err) {
        request.log.error({ err }, 'fastify-chat: frame handling failed')
        conn.sendError('internal_error', 'the frame could not be handled')
      }
      conn.resumeReading()
    })
  }
}
