// Opening an SQLite history file: the driver, the file's directory, the
// schema, and a readable reason when any of it fails.
import { constants } from 'node:fs'
import { access, mkdir, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type BetterSqlite3 from 'better-sqlite3'
import { FST_CHAT_STORE_UNAVAILABLE } from '../errors.js'
import type { ChatMessage, EntryType } from '../protocol/wire.js'
import { CID_WINDOW } from './history-store.js'

export type Database = BetterSqlite3.Database

export interface MessageRow {
  seq: number
  ts: number
  from_id: string
  from_name: string
  text: string
  cid: string | null
  /** The message's `meta` as JSON, NULL when it has none. */
  meta: string | null
  kind: EntryType | null
  of_seq: number | null
}

/** The columns of a stored message, in MessageRow's order. */
export const MESSAGE_COLUMNS = 'seq, ts, from_id, from_name, text, cid, meta, kind, of_seq'

export interface RoomRow {
  epoch: string
  offset: number
}

// Bump when the tables change, and migrate older files in migrate().
// A table that only this version reads (meta) needs no bump: an older
// version ignores it, and this one creates it in any file it opens.
const SCHEMA_VERSION = 3

// One row per message. `seq` is the message's offset ("offset" is an SQL
// keyword). Offsets come from rooms.last_offset, never from MAX(seq), so they
// keep counting after the oldest messages are pruned.
//
// messages.meta and cids.meta hold the message's `meta` as JSON text, NULL
// when it has none (so a message without costs nothing more). `kind` is null
// for a message, else 'edit' or 'delete' of the message at offset `of_seq`
// ("of" is an SQL keyword too).
//
// `reads` holds each user's read position (an offset, `seq`) per room,
// keyed by user first: a join reads one row, app.chat.unread one user's rows.
// Like `meta`, a table only this version reads: files of older versions get
// it when they open, without a schema bump.
//
// `meta` holds what the file keeps besides history: the key that signs
// resume tokens, so they outlive the process.
//
// `cids` is a ring of CID_WINDOW slots per room holding the latest messages
// that had a cid, whole: a resend must get the stored copy back even once
// retention pruned it from `messages`. rooms.cid_count numbers the slots, and
// a new cid replaces the row in its slot. Keyed by cid so that the lookup on
// every append with a cid is one primary-key probe: with a secondary index on
// the cid, SQLite's planner scans the room's slots instead.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS rooms (
  name TEXT PRIMARY KEY,
  epoch TEXT NOT NULL,
  last_offset INTEGER NOT NULL,
  cid_count INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  room TEXT NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  from_id TEXT NOT NULL,
  from_name TEXT NOT NULL,
  text TEXT NOT NULL,
  cid TEXT,
  meta TEXT,
  kind TEXT,
  of_seq INTEGER,
  PRIMARY KEY (room, seq)
);
CREATE TABLE IF NOT EXISTS cids (
  room TEXT NOT NULL,
  cid TEXT NOT NULL,
  slot INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  from_id TEXT NOT NULL,
  from_name TEXT NOT NULL,
  text TEXT NOT NULL,
  meta TEXT,
  kind TEXT,
  of_seq INTEGER,
  PRIMARY KEY (room, cid)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS cids_by_slot ON cids (room, slot);
CREATE TABLE IF NOT EXISTS reads (
  user_id TEXT NOT NULL,
  room TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (user_id, room)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
`

// Schema 1 had no cid memory: it starts with the latest cids its messages
// hold. A cid found twice keeps its latest message, and leaves its older
// slot empty: cid_count goes past the highest slot, so no slot is reused early.
const FROM_SCHEMA_1 = {
  before: 'ALTER TABLE rooms ADD COLUMN cid_count INTEGER NOT NULL DEFAULT 0',
  after: `
INSERT OR REPLACE INTO cids (room, cid, slot, seq, ts, from_id, from_name, text)
SELECT room, cid, ROW_NUMBER() OVER (PARTITION BY room ORDER BY seq) - 1, seq, ts, from_id, from_name, text
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY room ORDER BY seq DESC) AS newest FROM messages WHERE cid IS NOT NULL)
WHERE newest <= ${CID_WINDOW}
ORDER BY room, seq;
UPDATE rooms SET cid_count = COALESCE((SELECT MAX(slot) + 1 FROM cids WHERE cids.room = rooms.name), 0);
`
}

// Columns added after a table was first made: a file of an older schema
// gets them in place, null (a message without meta) in every row it already
// has. Schema 1 had no cids table; SCHEMA creates it whole.
const ADDED_COLUMNS: ReadonlyArray<[table: string, column: string, type: string]> = [
  ['messages', 'meta', 'TEXT'],
  ['messages', 'kind', 'TEXT'],
  ['messages', 'of_seq', 'INTEGER'],
  ['cids', 'meta', 'TEXT'],
  ['cids', 'kind', 'TEXT'],
  ['cids', 'of_seq', 'INTEGER']
]

function addColumns (db: Database): void {
  for (const [table, column, type] of ADDED_COLUMNS) {
    const columns = db.pragma(`table_info(${table})`) as Array<{ name: string }>
    if (!columns.some((existing) => existing.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`)
  }
}

// Only age pruning needs them, and every index slows appends down.
const TS_INDEXES = `
CREATE INDEX IF NOT EXISTS messages_by_ts ON messages (ts);
CREATE INDEX IF NOT EXISTS cids_by_ts ON cids (ts);
`

/** A stored message from its row. */
export function toMessage (room: string, row: MessageRow): ChatMessage {
  const message: ChatMessage = { room, offset: row.seq, ts: row.ts, from: { id: row.from_id, name: row.from_name }, text: row.text }
  if (row.cid !== null) message.cid = row.cid
  if (row.meta !== null) message.meta = JSON.parse(row.meta) as Record<string, unknown>
  if (row.kind !== null) {
    message.type = row.kind
    message.of = row.of_seq as number
  }
  return message
}

/** better-sqlite3, an optional peer dependency, loaded when a store first opens. */
export async function loadDriver (path: string): Promise<typeof BetterSqlite3> {
  try {
    return (await import('better-sqlite3')).default
  } catch (err) {
    const missing = (err as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND'
    throw new FST_CHAT_STORE_UNAVAILABLE(path, missing
      ? 'better-sqlite3 is not installed (npm install better-sqlite3)'
      : `better-sqlite3 could not be loaded: ${(err as Error).message}`, { cause: err })
  }
}

/** Makes the file's directory, parents included; a file in the way is FST_CHAT_STORE_UNAVAILABLE naming it. */
export async function ensureDirectory (path: string): Promise<void> {
  if (path === ':memory:') return
  const dir = dirname(resolve(path))
  try {
    await mkdir(dir, { recursive: true })
  } catch (err) {
    throw new FST_CHAT_STORE_UNAVAILABLE(path, await whyNoDirectory(dir, err as NodeJS.ErrnoException), { cause: err })
  }
}

/**
 * Fails, naming it, when the WAL's shared-memory file (`<path>-shm`, left by
 * a process that did not close the file) exists but cannot be written: made
 * immutable, typically, which kills a process that has it mapped with SIGBUS
 * on its next write. SQLite alone would only say "attempt to write a readonly
 * database". access() rather than open(): closing a descriptor of the file
 * would drop the locks this process's other connections hold on it.
 */
export async function checkSharedMemory (path: string): Promise<void> {
  if (path === ':memory:') return
  const shm = `${path}-shm`
  try {
    await access(shm, constants.W_OK)
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException
    if (code === 'ENOENT') return
    throw new FST_CHAT_STORE_UNAVAILABLE(path, `its WAL shared-memory file ${shm} cannot be written (${code ?? message}; is it immutable or read-only?)`, { cause: err })
  }
}

/** Sets the journal up and creates (or migrates) the tables, with the ts indexes when age pruning needs them. */
export function migrate (db: Database, withTsIndex: boolean): void {
  db.pragma('journal_mode = WAL')
  // In WAL mode this loses nothing when the process crashes, only the last
  // commits on a power cut, and spares an fsync per message.
  db.pragma('synchronous = NORMAL')
  // IMMEDIATE takes the write lock even when the tables exist, so a file
  // that another connection keeps locked fails here, at register, after
  // busyTimeoutMs, rather than on the first message.
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number
    if (version > SCHEMA_VERSION) {
      throw new Error(`it was written by a newer fastify-chat (schema ${version}, this version reads ${SCHEMA_VERSION})`)
    }
    if (version === 1) db.exec(FROM_SCHEMA_1.before)
    db.exec(SCHEMA)
    if (version < SCHEMA_VERSION) addColumns(db)
    if (version === 1) db.exec(FROM_SCHEMA_1.after)
    if (withTsIndex) db.exec(TS_INDEXES)
    db.pragma(`user_version = ${SCHEMA_VERSION}`)
  }).immediate()
}

/** A readable reason for a failed open, naming the cause the driver's message hides. */
export async function explain (path: string, err: unknown, busyTimeoutMs: number): Promise<string> {
  const message = err instanceof Error ? err.message : String(err)
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'SQLITE_BUSY') return `${message} (another connection held it for longer than busyTimeoutMs, ${busyTimeoutMs} ms)`
  if (path === ':memory:') return message
  const dir = dirname(resolve(path))
  const dirStat = await stat(dir).catch((error: NodeJS.ErrnoException) => error)
  if (dirStat instanceof Error) {
    if (dirStat.code === 'ENOENT') return `directory ${dir} does not exist`
    return dirStat.code === 'ENOTDIR' ? `${dir} is not a directory` : `directory ${dir} cannot be read (${dirStat.code ?? dirStat.message})`
  }
  if (!dirStat.isDirectory()) return `${dir} is not a directory`
  if ((await stat(path).catch(() => null))?.isDirectory() === true) return 'the path is a directory'
  if (code === 'SQLITE_CANTOPEN') return `${message} (can the directory ${dir} be written?)`
  return message
}

/** Why `dir` could not be made: the file in its way if there is one, else the fs error's message. */
async function whyNoDirectory (dir: string, err: NodeJS.ErrnoException): Promise<string> {
  if (err.code === 'EEXIST' || err.code === 'ENOTDIR') {
    // The nearest ancestor that exists is what mkdir tripped over.
    for (let path = dir; path !== dirname(path); path = dirname(path)) {
      const found = await stat(path).catch(() => null)
      if (found !== null && !found.isDirectory()) {
        return path === dir ? `${dir} is not a directory` : `cannot create directory ${dir}: ${path} is not a directory`
      }
      if (found !== null) break
    }
  }
  return `cannot create directory ${dir}: ${err.message}`
}
