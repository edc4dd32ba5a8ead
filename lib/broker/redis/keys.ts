/** The keys of one room's history, as the history scripts take them. */
export interface HistoryKeys {
  epochKey: string
  seqKey: string
  logKey: string
  cidsKey: string
  cidMessagesKey: string
}

/**
 * Where one chat keeps its data in Redis, under its prefix. Every key and
 * channel of a room carries `{room}`, a hash tag: on a cluster a room's keys
 * share one slot, so a single script can touch them all.
 */
export class RedisKeys {
  readonly #prefix: string

  constructor (prefix: string) {
    this.#prefix = prefix
  }

  #room (room: string, what: string): string {
    return `${this.#prefix}:{${room}}:${what}`
  }

  history (room: string): HistoryKeys {
    return {
      epochKey: this.#room(room, 'epoch'),
      seqKey: this.#room(room, 'seq'),
      logKey: this.#room(room, 'log'),
      cidsKey: this.#room(room, 'cids'),
      cidMessagesKey: this.#room(room, 'cid-messages')
    }
  }

  /** The sorted set of who is in the room, on which server. */
  presence (room: string): string {
    return this.#room(room, 'presence')
  }

  /** The sorted set of presence members a sweep announced gone, by when. */
  presenceGone (room: string): string {
    return this.#room(room, 'gone')
  }

  /** Which presence data a list saw: `<epoch>:<restores>`, the epoch new whenever Redis lost it. */
  presenceVersion (room: string): string {
    return this.#room(room, 'presence-version')
  }

  /** The pub/sub channel carrying a room's messages and presence events. */
  channel (room: string): string {
    return this.#room(room, 'ch')
  }

  /** The hash of a direct room's two users: id to name. */
  pair (room: string): string {
    return this.#room(room, 'pair')
  }

  /** The pub/sub channel carrying moderation commands to every server. */
  get control (): string {
    return `${this.#prefix}:control`
  }

  /** The stream of recent moderation commands, for a server that missed some. */
  get controlLog (): string {
    return `${this.#prefix}:control-log`
  }

  /** The resume-token secret every server of the chat shares. */
  get secret (): string {
    return `${this.#prefix}:secret`
  }
}
