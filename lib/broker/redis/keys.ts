/** The keys of one room's history, as the history scripts take them. */
export interface HistoryKeys {
  epochKey: string
  seqKey: string
  logKey: string
  cidsKey: string
  cidMessagesKey: string
}

/** The keys of one room's presence, as the presence scripts take them. */
export interface PresenceKeys {
  /** Sorted set of the present users' ids, all scored 0: paged by id, counted with ZCARD. */
  usersKey: string
  /** Hash of user id -> name. */
  namesKey: string
  /** Hash of user id -> on how many servers the user has a member. */
  refsKey: string
  /** Sorted set of the servers with members, scored by when their heartbeat expires. */
  serversKey: string
  /** Hash of server id -> the sum of its members' digests. */
  digestsKey: string
  /** Sorted set of the servers a sweep took members from, by when. */
  goneKey: string
  /** Which presence data a page saw: `<epoch>:<restores>`, the epoch new whenever Redis lost it. */
  versionKey: string
  /**
   * Not a key: with a server's id appended, the sorted set of that server's
   * members (user ids). Passed as a key so that a cluster routes the script
   * to the room's slot, which these sets share.
   */
  serverPrefix: string
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

  /** The keys of one room's presence, as the presence scripts take them (see presence-scripts.ts). */
  presence (room: string): PresenceKeys {
    return {
      usersKey: this.#room(room, 'users'),
      namesKey: this.#room(room, 'names'),
      refsKey: this.#room(room, 'refs'),
      serversKey: this.#room(room, 'servers'),
      digestsKey: this.#room(room, 'digests'),
      goneKey: this.#room(room, 'gone-servers'),
      versionKey: this.#room(room, 'presence-version'),
      serverPrefix: this.#room(room, 'srv:')
    }
  }

  /** The pub/sub channel carrying a room's messages and presence events. */
  channel (room: string): string {
    return this.#room(room, 'ch')
  }

  /** The hash of a direct room's two users: id to name. */
  pair (room: string): string {
    return this.#room(room, 'pair')
  }

  /**
   * The hash of one user's read positions: room -> offset. Only single-key
   * scripts touch it, so on a cluster it lives wherever the user's id hashes.
   */
  reads (userId: string): string {
    return `${this.#prefix}:reads:${userId}`
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
