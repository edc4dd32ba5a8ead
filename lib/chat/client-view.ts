import type { FastifyRequest } from 'fastify'

/** What a client view reads from; the connection, seen through a narrow window. */
interface ViewSource {
  readonly id: string
  readonly key: string
  readonly name: string
  readonly data: unknown
  readonly request: FastifyRequest
  roomNames (): Iterable<string>
}

/** The connected client, as `onMessage` (and every hook) sees it: read-only, and no way to the socket. */
export interface ChatClient {
  /** The user's id: from `identify`, a resume token, or random. */
  readonly id: string
  /** This socket's id, as `welcome` gave it: distinct for each socket (tab) of one user. */
  readonly clientId: string
  /** The display name now. */
  readonly name: string
  /** The rooms this socket is in now (a copy). */
  readonly rooms: ReadonlySet<string>
  /** What `identify` returned as `data`; `undefined` otherwise. */
  readonly data: unknown
  /** The upgrade request. */
  readonly request: FastifyRequest
}

/** A read-only window on one connection: fields are getters over it, and the view itself is frozen. */
export class ClientView implements ChatClient {
  readonly #source: ViewSource

  constructor (source: ViewSource) {
    this.#source = source
    Object.freeze(this)
  }

  get id (): string { return this.#source.id }
  get clientId (): string { return this.#source.key }
  get name (): string { return this.#source.name }
  get rooms (): ReadonlySet<string> { return new Set(this.#source.roomNames()) }
  get data (): unknown { return this.#source.data }
  get request (): FastifyRequest { return this.#source.request }
}
