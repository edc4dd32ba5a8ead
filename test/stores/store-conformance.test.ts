import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { SqliteStore, sqliteStore } from '../../lib/stores/sqlite-store.js'
import type { SqliteStoreOptions } from '../../lib/stores/sqlite-store.js'
import type { HistoryStore } from '../../lib/stores/history-store.js'
import { conformance, WINDOW } from '../helpers/store-conformance.js'

const dir = await mkdtemp(join(tmpdir(), 'fastify-chat-conformance-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
let files = 0
const file = (): string => join(dir, `store-${++files}.db`)

conformance(t, 'MemoryStore', async () => new MemoryStore({ size: WINDOW }))

/** The same options on the file of `store`: a restart. */
function reopenWith (opts: Omit<SqliteStoreOptions, 'path'>): (store: HistoryStore) => Promise<HistoryStore> {
  return async (store) => sqliteStore({ ...opts, path: (store as SqliteStore).path })
}

// Two ways to see WINDOW messages: read at most that many from a file that
// keeps everything, or keep only that many.
const byHistorySize = { historySize: WINDOW }
const byRetainCount = { historySize: 1000, retain: { count: WINDOW } }
conformance(t, 'SqliteStore (historySize)', async () => sqliteStore({ ...byHistorySize, path: file() }), reopenWith(byHistorySize))
conformance(t, 'SqliteStore (retain.count)', async () => sqliteStore({ ...byRetainCount, path: file() }), reopenWith(byRetainCount))
conformance(t, 'SqliteStore (:memory:)', async () => sqliteStore({ path: ':memory:', historySize: WINDOW }))
