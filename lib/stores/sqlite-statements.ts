import { randomBytes } from 'node:crypto'
import type BetterSqlite3 from 'better-sqlite3'
import { MESSAGE_COLUMNS } from './sqlite-file.js'
import type { Database, MessageRow, RoomRow } from './sqlite-file.js'
import { CID_WINDOW } from './history-store.js'
import type { NewMessage } from './history-store.js'

/** The prepared statements and transactions of one open file: everything the store runs on it. */
export interface Statements {
  db: Database
  /** The new message's offset, or the stored row of a message with the same cid. */
  append: (message: NewMessage) => number | MessageRow
  read: <T>(fn: () => T) => T
  room: BetterSqlite3.Statement<[string], RoomRow>
  latest: BetterSqlite3.Statement<[string, number], MessageRow>
  after: BetterSqlite3.Statement<[string, number, number], MessageRow>
  older: BetterSqlite3.Statement<[string, number, number], MessageRow>
  entry: BetterSqlite3.Statement<[string, number], MessageRow>
  pruneAge: (before: number) => void
  /** The file's resume secret, made on first use. */
  secret: () => string
  /** Moves a read position forward (see markRead); the new one, or null. */
  markRead: (room: string, userId: string, offset: number) => number | null
  readPosition: BetterSqlite3.Statement<[string, string], { seq: number }>
  readPositions: BetterSqlite3.Statement<[string], { room: string, seq: number }>
}

/**
 * Prepares what the store runs on `db`. `retainCount` prunes each room to
 * its latest messages as it appends; `epochOf` gives a room written for the
 * first time its epoch.
 */
export function prepareStatements (db: Database, { retainCount, epochOf }: { retainCount: number | undefined, epochOf: (room: string) => string }): Statements {
  const seen = db.prepare<[string, string], MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM cids WHERE room = ? AND cid = ?`)
  const bump = db.prepare<[number, string], { offset: number, cids: number }>(
    'UPDATE rooms SET last_offset = last_offset + 1, cid_count = cid_count + ? WHERE name = ? RETURNING last_offset AS offset, cid_count AS cids'
  )
  const create = db.prepare<[string, string, number]>('INSERT INTO rooms (name, epoch, last_offset, cid_count) VALUES (?, ?, 1, ?)')
  const insert = db.prepare<[string, number, number, string, string, string, string | null, string | null, string | null, number | null]>(
    'INSERT INTO messages (room, seq, ts, from_id, from_name, text, cid, meta, kind, of_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'
  )
  // REPLACE: the cid that held the slot, CID_WINDOW cids ago, is forgotten.
  const remember = db.prepare<[string, string, number, number, number, string, string, string, string | null, string | null, number | null]>(
    'INSERT OR REPLACE INTO cids (room, cid, slot, seq, ts, from_id, from_name, text, meta, kind, of_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'
  )
  const pruneCount = db.prepare<[string, number]>('DELETE FROM messages WHERE room = ? AND seq <= ?')
  const append = db.transaction((message: NewMessage): number | MessageRow => {
    const { room, cid } = message
    if (cid !== undefined) {
      const row = seen.get(room, cid)
      if (row !== undefined) return row
    }
    const counted = cid === undefined ? 0 : 1
    let state = bump.get(counted, room)
    if (state === undefined) {
      state = { offset: 1, cids: counted }
      create.run(room, epochOf(room), counted)
    }
    const { offset } = state
    const meta = message.meta === undefined ? null : JSON.stringify(message.meta)
    const kind = message.type ?? null
    const of = message.of ?? null
    insert.run(room, offset, message.ts, message.from.id, message.from.name, message.text, cid ?? null, meta, kind, of)
    if (cid !== undefined) remember.run(room, cid, (state.cids - 1) % CID_WINDOW, offset, message.ts, message.from.id, message.from.name, message.text, meta, kind, of)
    if (retainCount !== undefined && offset > retainCount) pruneCount.run(room, offset - retainCount)
    return offset
  })
  const pruneMessages = db.prepare<[number]>('DELETE FROM messages WHERE ts < ?')
  const pruneCids = db.prepare<[number]>('DELETE FROM cids WHERE ts < ?')
  // One snapshot per read, so a room's offset and its messages agree even
  // when another connection writes in between.
  const read = db.transaction((fn: () => unknown) => fn())
  // OR IGNORE: a second process that made a key at the same time keeps the one already stored.
  const keep = db.prepare<[string]>("INSERT OR IGNORE INTO meta (key, value) VALUES ('resume_secret', ?)")
  const stored = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'resume_secret'")
  const secret = db.transaction(() => {
    keep.run(randomBytes(32).toString('base64url'))
    return (stored.get() as { value: string }).value
  })
  const readPosition = db.prepare<[string, string], { seq: number }>('SELECT seq FROM reads WHERE user_id = ? AND room = ?')
  const latestOf = db.prepare<[string], { offset: number }>('SELECT last_offset AS offset FROM rooms WHERE name = ?')
  // The kept position moves when the new one is further, or when it is beyond the room's latest (history lost since).
  const moveRead = db.prepare<[string, string, number, number], { seq: number }>(
    'INSERT INTO reads (user_id, room, seq) VALUES (?, ?, ?) ON CONFLICT (user_id, room) DO UPDATE SET seq = excluded.seq ' +
    'WHERE excluded.seq <> reads.seq AND (excluded.seq > reads.seq OR reads.seq > ?) RETURNING seq'
  )
  const markRead = db.transaction((room: string, userId: string, offset: number): number | null => {
    const latest = latestOf.get(room)?.offset ?? 0
    const clamped = Math.min(offset, latest)
    // No row is the same as a row at 0: nothing to write.
    if (clamped === 0 && readPosition.get(userId, room) === undefined) return null
    return moveRead.get(userId, room, clamped, latest)?.seq ?? null
  })
  return {
    db,
    markRead: (room, userId, offset) => markRead.immediate(room, userId, offset),
    readPosition,
    readPositions: db.prepare('SELECT room, seq FROM reads WHERE user_id = ?'),
    // IMMEDIATE: a second process writing the file waits for the lock up
    // front instead of failing when a read lock cannot be upgraded.
    append: (message) => append.immediate(message),
    read: <T>(fn: () => T): T => read(fn) as T,
    room: db.prepare('SELECT epoch, last_offset AS offset FROM rooms WHERE name = ?'),
    latest: db.prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?`),
    after: db.prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?`),
    // The primary key: one probe.
    entry: db.prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq = ?`),
    older: db.prepare(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?`),
    // Remembered cids go too: their copies hold the text that maxAgeMs is there to delete.
    pruneAge: db.transaction((before: number) => {
      pruneMessages.run(before)
      pruneCids.run(before)
    }),
    secret: () => secret.immediate()
  }
}
