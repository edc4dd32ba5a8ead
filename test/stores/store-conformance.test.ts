import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { sqliteStore } from '../../lib/stores/sqlite-store.js'
import { conformance, WINDOW } from '../helpers/store-conformance.js'

const dir = await mkdtemp(join(tmpdir(), 'fastify-chat-conformance-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
let files = 0
const file = (): string => join(dir, `store-${++files}.db`)

conformance(t, 'MemoryStore', async () => new MemoryStore({ size: WINDOW }))

// Two ways to see WINDOW messages: read at most that many from a file that
// keeps everything, or keep only that many.
conformance(t, 'SqliteStore (historySize)', async () => sqliteStore({ path: file(), historySize: WINDOW }))
conformance(t, 'SqliteStore (retain.count)', async () => sqliteStore({ path: file(), historySize: 1000, retain: { count: WINDOW } }))
conformance(t, 'SqliteStore (:memory:)', async () => sqliteStore({ path: ':memory:', historySize: WINDOW }))
