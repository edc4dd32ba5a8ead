import { FST_CHAT_INVALID_OPTION, FST_CHAT_STORE_UNAVAILABLE } from '../errors.js'
import { integerOption, refuseUnknownKeys, shown } from '../validate.js'
import { newEpoch } from './epoch.js'
import { checkSharedMemory, ensureDirectory, explain, loadDriver, migrate, toMessage } from './sqlite-file.js'
import { prepareStatements } from './sqlite-statements.js'
import type { Statements } from './sqlite-statements.js'
import type { Database, RoomRow } from './sqlite-file.js'
import type { AppendResult, HistoryPage, HistoryStore, NewMessage, OlderPage } from './history-store.js'
import type { ChatMessage } from '../protocol/wire.js'

/** How much of the history the file keeps; without it, every message stays. */
export interface SqliteRetention {
  /** Keep at most the latest `count` messages per room. */
  count?: number
  /** Delete messages older than this many milliseconds (by their `ts`). */
  maxAgeMs?: number
}

/** Options of {@link sqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * The database file, or `':memory:'`. When the store opens, a missing file
   * is created, and so is its directory, parents included (`mkdir -p`).
   */
  path: string
  /**
   * Most messages one read returns: a `since` further behind than this is a
   * gap (the client gets the latest history with `recovered: false`).
   * @default 100
   */
  historySize?: number
  /** What the file keeps. @default every message */
  retain?: SqliteRetention
  /** How long to wait for a lock held by another connection before failing. @default 5000 */
  busyTimeoutMs?: number
}

// Age pruning is a range delete over the ts index: cheap, but not worth
// running on every append.
const AGE_PRUNE_EVERY_MS = 60_000

// Epochs handed out for rooms that were read but never written are kept in
// memory only (so probing room names cannot grow the file), at most this many.
const MAX_UNWRITTEN = 10_000

const OPTION_KEYS: ReadonlySet<string> = new Set(['path', 'historySize', 'retain', 'busyTimeoutMs'])
const RETAIN_KEYS: ReadonlySet<string> = new Set(['count', 'maxAgeMs'])

function integer (name: string, value: unknown, fallback: number | undefined, min: number, max?: number): number | undefined {
  return value === undefined ? fallback : integerOption(name, value, min, max)
}

/** The open database and its prepared statements. */

/**
 * Keeps history in an embedded SQLite database (better-sqlite3, an optional
 * peer dependency loaded by `init()`), so it survives restarts: offsets keep
 * counting and epochs stay, and clients resume with `recovered: true`. The
 * latest cids of each room are kept in the file too, so a message resent
 * after a crash is stored once.
 *
 * better-sqlite3 is synchronous, so each call is one short transaction on the
 * event loop; one process should own the file. A store you pass to the plugin
 * is yours to `close()`.
 */
export class SqliteStore implements HistoryStore {
  /** The database file, as given. */
  readonly path: string
  #historySize: number
  #retainCount: number | undefined
  #maxAgeMs: number | undefined
  #busyTimeoutMs: number
  #sql: Statements | null = null
  #opening: Promise<Statements> | null = null
  #closed = false
  #nextAgePrune = 0
  #unwritten = new Map<string, string>()

  constructor (opts: SqliteStoreOptions) {
    if (typeof opts !== 'object' || opts === null) throw new FST_CHAT_INVALID_OPTION('sqliteStore', `needs an options object with a path, got ${shown(opts)}`)
    refuseUnknownKeys(opts, OPTION_KEYS, 'sqliteStore')
    if (typeof opts.path !== 'string' || opts.path === '') {
      throw new FST_CHAT_INVALID_OPTION('sqliteStore.path', `must be a file path or ':memory:', got ${shown(opts.path)}`)
    }
    this.path = opts.path
    this.#historySize = integer('sqliteStore.historySize', opts.historySize, 100, 0, 100_000) as number
    this.#busyTimeoutMs = integer('sqliteStore.busyTimeoutMs', opts.busyTimeoutMs, 5000, 0, 2 ** 31 - 1) as number
    const retain: unknown = opts.retain
    if (retain !== undefined) {
      if (typeof retain !== 'object' || retain === null) {
        throw new FST_CHAT_INVALID_OPTION('sqliteStore.retain', `must be an object with count and/or maxAgeMs, got ${shown(retain)}`)
      }
      refuseUnknownKeys(retain, RETAIN_KEYS, 'sqliteStore.retain')
      const { count, maxAgeMs } = retain as SqliteRetention
      if (count === undefined && maxAgeMs === undefined) {
        throw new FST_CHAT_INVALID_OPTION('sqliteStore.retain', 'must have count and/or maxAgeMs')
      }
      this.#retainCount = integer('sqliteStore.retain.count', count, undefined, 1)
      this.#maxAgeMs = integer('sqliteStore.retain.maxAgeMs', maxAgeMs, undefined, 1)
    }
  }

  /** Opens the database (loading better-sqlite3) and creates the tables; the other methods call it when needed. */
  async init (): Promise<void> {
    await this.#open()
  }

  async #open (): Promise<Statements> {
    if (this.#closed) throw new FST_CHAT_STORE_UNAVAILABLE(this.path, 'the store is closed')
    this.#opening ??= this.#connect().then((sql) => {
      if (!this.#closed) this.#sql = sql
      return sql
    }, (err: unknown) => {
      // A failed open may be retried, say once the directory exists.
      this.#opening = null
      throw err
    })
    return await this.#opening
  }

  async #connect (): Promise<Statements> {
    const Driver = await loadDriver(this.path)
    await ensureDirectory(this.path)
    await checkSharedMemory(this.path)
    // close() may have run while the driver loaded or mkdir ran; from here on nothing awaits.
    if (this.#closed) throw new FST_CHAT_STORE_UNAVAILABLE(this.path, 'the store is closed')
    let db: Database | undefined
    try {
      db = new Driver(this.path, { timeout: this.#busyTimeoutMs })
      migrate(db, this.#maxAgeMs !== undefined)
      const sql = this.#prepare(db)
      this.#pruneOnOpen(sql)
      return sql
    } catch (err) {
      db?.close()
      throw new FST_CHAT_STORE_UNAVAILABLE(this.path, await explain(this.path, err, this.#busyTimeoutMs), { cause: err })
    }
  }

  #prepare (db: Database): Statements {
    return prepareStatements(db, { retainCount: this.#retainCount, epochOf: (room) => this.#unwritten.get(room) ?? newEpoch() })
  }

  // Applies `retain` to the whole file, in case it changed since the last run.
  #pruneOnOpen (sql: Statements): void {
    if (this.#retainCount !== undefined) {
      sql.db.prepare('DELETE FROM messages WHERE seq <= (SELECT last_offset FROM rooms WHERE name = messages.room) - ?').run(this.#retainCount)
    }
    this.#agePrune(sql)
  }

  #agePrune (sql: Statements): void {
    if (this.#maxAgeMs === undefined) return
    const now = Date.now()
    if (now < this.#nextAgePrune) return
    this.#nextAgePrune = now + Math.min(this.#maxAgeMs, AGE_PRUNE_EVERY_MS)
    sql.pruneAge(now - this.#maxAgeMs)
  }

  #roomState (sql: Statements, room: string): RoomRow {
    const row = sql.room.get(room)
    if (row !== undefined) return row
    let epoch = this.#unwritten.get(room)
    if (epoch === undefined) {
      epoch = newEpoch()
      this.#unwritten.set(room, epoch)
      if (this.#unwritten.size > MAX_UNWRITTEN) this.#unwritten.delete(this.#unwritten.keys().next().value as string)
    }
    return { epoch, offset: 0 }
  }

  async append (message: NewMessage): Promise<AppendResult> {
    const sql = this.#sql ?? await this.#open()
    const outcome = sql.append(message)
    if (typeof outcome !== 'number') return { message: toMessage(message.room, outcome), duplicate: true }
    if (outcome === 1) this.#unwritten.delete(message.room)
    this.#agePrune(sql)
    return { message: { ...message, offset: outcome }, duplicate: false }
  }

  async recent (room: string, limit: number): Promise<HistoryPage> {
    const sql = this.#sql ?? await this.#open()
    const count = Math.max(0, Math.min(Math.floor(limit), this.#historySize))
    return sql.read(() => {
      const { epoch, offset } = this.#roomState(sql, room)
      const rows = count === 0 || offset === 0 ? [] : sql.latest.all(room, count)
      return { epoch, offset, messages: rows.reverse().map((row) => toMessage(room, row)) }
    })
  }

  async since (room: string, offset: number): Promise<HistoryPage | null> {
    const sql = this.#sql ?? await this.#open()
    return sql.read(() => {
      const state = this.#roomState(sql, room)
      const missed = state.offset - offset
      if (missed < 0 || missed > this.#historySize) return null
      const rows = missed === 0 ? [] : sql.after.all(room, offset, missed)
      // Offsets are consecutive, so fewer rows than missed means some were pruned.
      if (rows.length !== missed) return null
      return { epoch: state.epoch, offset: state.offset, messages: rows.map((row) => toMessage(room, row)) }
    })
  }

  /**
   * Pages back through everything the file keeps (`historySize` bounds only
   * `recent` and `since`): one read of at most `limit + 1` rows down the
   * primary key, the extra one telling whether older messages are kept.
   */
  async before (room: string, offset: number, limit: number): Promise<OlderPage> {
    const sql = this.#sql ?? await this.#open()
    const count = Math.max(0, Math.floor(limit))
    return sql.read(() => {
      const state = this.#roomState(sql, room)
      const rows = offset <= 1 || state.offset === 0 ? [] : sql.older.all(room, Math.floor(offset), count + 1)
      const more = rows.length > count
      if (more) rows.pop()
      return { epoch: state.epoch, offset: state.offset, messages: rows.reverse().map((row) => toMessage(room, row)), more }
    })
  }

  async entry (room: string, offset: number): Promise<ChatMessage | null> {
    const sql = this.#sql ?? await this.#open()
    const row = sql.entry.get(room, offset)
    return row === undefined ? null : toMessage(room, row)
  }

  async epoch (room: string): Promise<string> {
    const sql = this.#sql ?? await this.#open()
    return sql.read(() => this.#roomState(sql, room).epoch)
  }

  async markRead (room: string, userId: string, offset: number): Promise<number | null> {
    const sql = this.#sql ?? await this.#open()
    return sql.markRead(room, userId, offset)
  }

  async readPosition (room: string, userId: string): Promise<number> {
    const sql = this.#sql ?? await this.#open()
    return sql.readPosition.get(userId, room)?.seq ?? 0
  }

  async readPositions (userId: string): Promise<Record<string, number>> {
    const sql = this.#sql ?? await this.#open()
    // fromEntries: a room may be named __proto__.
    return Object.fromEntries(sql.readPositions.all(userId).map(({ room, seq }) => [room, seq]))
  }

  /**
   * The key that signs resume tokens, made at random the first time and kept
   * in the file: a server restarted on the same file (or another process
   * sharing it) verifies the tokens handed out before. A `':memory:'` store
   * keeps it as long as the process.
   */
  async secret (): Promise<string> {
    const sql = this.#sql ?? await this.#open()
    return sql.secret()
  }

  /** Closes the database; later calls fail with `FST_CHAT_STORE_UNAVAILABLE`. Closing twice is harmless. */
  async close (): Promise<void> {
    this.#closed = true
    const opening = this.#opening
    this.#opening = null
    this.#sql = null
    this.#unwritten.clear()
    if (opening !== null) await opening.then((sql) => sql.db.close(), () => {})
  }
}

/** An embedded SQLite {@link HistoryStore}: history that survives a restart. */
export function sqliteStore (opts: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(opts)
}
