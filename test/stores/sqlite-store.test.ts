import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import Database from 'better-sqlite3'
import Fastify from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat from '../../index.js'
import type { ChatMessage, JoinedFrame } from '../../index.js'
import { CID_WINDOW } from '../../lib/stores/history-store.js'
import type { NewMessage } from '../../lib/stores/history-store.js'
import { SqliteStore, sqliteStore } from '../../lib/stores/sqlite-store.js'
import type { SqliteStoreOptions } from '../../lib/stores/sqlite-store.js'
import { Client, join, listen } from '../helpers/chat.js'

const run = promisify(execFile)
const dir = await mkdtemp(joinPath(tmpdir(), 'fastify-chat-sqlite-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
let files = 0
/** A path for a new database file in the test's temp dir. */
const newFile = (): string => joinPath(dir, `chat-${++files}.db`)

const storeModule = new URL('../../lib/stores/sqlite-store.js', import.meta.url).href

function message (room: string, text = 'hi', ts = 1_700_000_000_000): NewMessage {
  return { room, ts, from: { id: 'u1', name: 'alice' }, text }
}

function withCid (cid: string, room: string, text = 'hi', ts?: number): NewMessage {
  return { ...message(room, text, ts), cid }
}

/** A store on `path`, opened, and closed when the test ends. */
async function open (t: Test, opts: SqliteStoreOptions): Promise<SqliteStore> {
  const store = sqliteStore(opts)
  t.teardown(() => store.close())
  await store.init()
  return store
}

/** A second, raw connection to look inside the file. */
function inspect (t: Test, path: string): Database.Database {
  const db = new Database(path)
  t.teardown(() => db.close())
  return db
}

function rowsByRoom (db: Database.Database): Record<string, { count: number, first: number, last: number }> {
  const rows = db.prepare('SELECT room, count(*) AS count, min(seq) AS first, max(seq) AS last FROM messages GROUP BY room').all() as Array<{ room: string, count: number, first: number, last: number }>
  return Object.fromEntries(rows.map(({ room, ...rest }) => [room, rest]))
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
const offsets = (messages: ChatMessage[] | undefined): number[] | undefined => messages?.map((m) => m.offset)

/** Runs `code` (an ES module body; `sqliteStore` is in scope) in a child Node process, from the TS sources as tap runs them. */
function child (code: string, extraArgs: string[] = []): ReturnType<typeof spawn> {
  const body = `const { sqliteStore } = await import(${JSON.stringify(storeModule)});\n${code}`
  return spawn(process.execPath, [...process.execArgv, ...extraArgs, '--input-type=module', '-e', body], { stdio: ['pipe', 'pipe', 'inherit'] })
}

t.test('options are checked when the store is made', async (t) => {
  const bad: Array<[unknown, string]> = [
    [undefined, 'sqliteStore'],
    [{}, 'sqliteStore.path'],
    [{ path: '' }, 'sqliteStore.path'],
    [{ path: 42 }, 'sqliteStore.path'],
    [{ path: ':memory:', historySize: -1 }, 'sqliteStore.historySize'],
    [{ path: ':memory:', historySize: 1.5 }, 'sqliteStore.historySize'],
    [{ path: ':memory:', busyTimeoutMs: '100' }, 'sqliteStore.busyTimeoutMs'],
    [{ path: ':memory:', retain: {} }, 'sqliteStore.retain'],
    [{ path: ':memory:', retain: 10 }, 'sqliteStore.retain'],
    [{ path: ':memory:', retain: { count: 0 } }, 'sqliteStore.retain.count'],
    [{ path: ':memory:', retain: { maxAgeMs: -5 } }, 'sqliteStore.retain.maxAgeMs'],
    [{ path: ':memory:', historysize: 5 }, 'sqliteStore.historysize'],
    [{ path: ':memory:', retain: { count: 5, maxAge: 10 } }, 'sqliteStore.retain.maxAge']
  ]
  for (const [opts, name] of bad) {
    t.throws(() => sqliteStore(opts as SqliteStoreOptions), { code: 'FST_CHAT_INVALID_OPTION', message: `"${name}"` }, JSON.stringify(opts) ?? 'undefined')
  }
  t.type(sqliteStore({ path: ':memory:', historySize: 0, busyTimeoutMs: 0, retain: { count: 1, maxAgeMs: 1 } }), SqliteStore)
  t.throws(() => sqliteStore({ path: ':memory:', historysize: 5 } as unknown as SqliteStoreOptions), {
    message: 'fastify-chat: option "sqliteStore.historysize" is not a known option (did you mean "sqliteStore.historySize"?)'
  }, 'an unknown key names the closest known one')
  t.throws(() => sqliteStore({ path: ':memory:', busyTimeoutMs: '100' } as unknown as SqliteStoreOptions), { message: /got "100"$/ })
})

t.test('the file is in WAL mode with one row per message, and the store opens itself on first use', async (t) => {
  const path = newFile()
  const store = sqliteStore({ path })
  t.teardown(() => store.close())
  t.equal((await store.append(message('a', 'one'))).message.offset, 1, 'no init() needed')
  await store.append(message('a', 'two'))
  await store.append({ ...message('b', 'three'), cid: 'c3' })

  const db = inspect(t, path)
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal')
  t.strictSame(db.prepare('SELECT room, seq, text, cid FROM messages ORDER BY room, seq').all(), [
    { room: 'a', seq: 1, text: 'one', cid: null },
    { room: 'a', seq: 2, text: 'two', cid: null },
    { room: 'b', seq: 1, text: 'three', cid: 'c3' }
  ])
  t.strictSame(db.prepare('SELECT name, last_offset FROM rooms ORDER BY name').all(), [
    { name: 'a', last_offset: 2 },
    { name: 'b', last_offset: 1 }
  ])
  t.strictSame(db.prepare('SELECT room, slot, cid, seq, text FROM cids').all(), [
    { room: 'b', slot: 0, cid: 'c3', seq: 1, text: 'three' }
  ], 'with a copy of the message of each cid')
})

t.test('a missing directory is created, parents included', async (t) => {
  const path = joinPath(dir, 'new', 'nested', 'chat.db')
  const store = await open(t, { path })
  t.equal((await store.append(message('a'))).message.offset, 1)
  t.equal((inspect(t, path).prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number }).n, 1, 'the file is where it was asked for')
})

t.test('a restarted store keeps history, offsets and epochs; a new file gets new epochs', async (t) => {
  const path = newFile()
  const first = await open(t, { path })
  for (let i = 1; i <= 3; i++) await first.append(message('a', `m${i}`))
  const epochA = await first.epoch('a')
  const epochFresh = await first.epoch('fresh')
  await first.append(message('later', 'x'))
  const epochLater = await first.epoch('later')
  await first.close()

  const second = await open(t, { path })
  t.equal(await second.epoch('a'), epochA, 'the epoch survives')
  t.equal(await second.epoch('later'), epochLater, 'as does one handed out before the first write')
  t.not(await second.epoch('fresh'), epochFresh, 'a room never written has nothing to keep')
  const page = await second.since('a', 1)
  t.strictSame(page, { epoch: epochA, offset: 3, messages: [{ ...message('a', 'm2'), offset: 2 }, { ...message('a', 'm3'), offset: 3 }] })
  t.equal((await second.append(message('a', 'm4'))).message.offset, 4, 'numbering continues')

  const other = await open(t, { path: newFile() })
  t.not(await other.epoch('a'), epochA, 'another file, another epoch')
})

t.test('the app restarts on the same file: history, offsets and epochs are intact, and a client that was away recovers', async (t) => {
  const path = newFile()
  const store1 = sqliteStore({ path })
  t.teardown(() => store1.close())
  const one = await listen(t, { store: store1 })

  const alice = await Client.connect(one.url, '/chat?name=alice')
  await alice.expect('welcome')
  const aliceJoined = await alice.expect('joined')
  t.equal(aliceJoined.offset, 0)
  const epoch = aliceJoined.epoch
  alice.send({ type: 'message', text: 'one' })
  t.match(await alice.expect('message'), { offset: 1, text: 'one' })
  alice.send({ type: 'message', text: 'two', cid: 'c2' })
  t.match(await alice.expect('message'), { offset: 2, text: 'two', cid: 'c2' })

  const bob = await Client.connect(one.url, '/chat?name=bob')
  await bob.expect('welcome')
  const bobJoined = await bob.expect('joined')
  t.match(bobJoined, { epoch, offset: 2, recovered: false })
  t.strictSame(offsets(bobJoined.history), [1, 2])
  await alice.expect('presence')
  bob.close()
  await bob.closed
  await alice.expect('presence')

  await one.app.chat.broadcast('lobby', 'while bob was away')
  t.match(await alice.expect('message'), { offset: 3, text: 'while bob was away' })
  alice.close()
  await alice.closed
  await one.app.close()
  await store1.close()

  const store2 = sqliteStore({ path })
  t.teardown(() => store2.close())
  const two = await listen(t, { store: store2 })
  await two.app.chat.broadcast('lobby', 'after the restart')

  const carol = await Client.connect(two.url, '/chat?name=carol')
  await carol.expect('welcome')
  const carolJoined = await carol.expect('joined')
  t.match(carolJoined, { epoch, offset: 4, recovered: false }, 'same epoch, offsets continue')
  t.strictSame(carolJoined.history.map((m) => [m.offset, m.from.name, m.text, m.cid]), [
    [1, 'alice', 'one', undefined],
    [2, 'alice', 'two', 'c2'],
    [3, 'system', 'while bob was away', undefined],
    [4, 'system', 'after the restart', undefined]
  ])

  const back = await Client.connect(two.url, `/chat?name=bob&since=${encodeURIComponent(`${epoch}:2`)}`)
  await back.expect('welcome')
  const backJoined: JoinedFrame = await back.expect('joined')
  t.match(backJoined, { epoch, offset: 4, recovered: true })
  t.strictSame(backJoined.history.map((m) => m.text), ['while bob was away', 'after the restart'], 'exactly what bob missed')
  await carol.expect('presence')

  carol.send({ type: 'message', text: 'welcome back' })
  t.match(await back.expect('message'), { offset: 5, text: 'welcome back' })
  t.strictSame(offsets(await two.app.chat.history('lobby', { since: 3 })), [4, 5])
})

t.test('concurrent writers', async (t) => {
  t.test('many appends in parallel: consecutive offsets per room, none twice', async (t) => {
    const store = await open(t, { path: newFile(), historySize: 1000 })
    const rooms = ['a', 'b', 'c', 'd', 'e']
    const stored = await Promise.all(range(0, 999).map(async (i) => (await store.append(message(rooms[i % rooms.length] as string, `m${i}`))).message))
    for (const room of rooms) {
      t.strictSame(stored.filter((m) => m.room === room).map((m) => m.offset), range(1, 200), `room ${room}, in call order`)
      const page = await store.recent(room, 1000)
      t.strictSame(offsets(page.messages), range(1, 200))
    }
  })

  t.test('clients sending at once in several rooms, through the plugin', async (t) => {
    const store = sqliteStore({ path: newFile() })
    t.teardown(() => store.close())
    const { app, url } = await listen(t, { store })
    const rooms = ['r1', 'r2', 'r3']
    const watchers = await Promise.all(rooms.map((room) => join(url, `?room=${room}&name=watch`)))
    const senders = await Promise.all(rooms.flatMap((room) => [join(url, `?room=${room}&name=s1`), join(url, `?room=${room}&name=s2`)]))
    for (const watcher of watchers) {
      await watcher.expect('presence')
      await watcher.expect('presence')
    }
    for (const sender of senders) for (let i = 0; i < 10; i++) sender.send(`hello ${i}`)
    for (const [i, watcher] of watchers.entries()) {
      const seen: number[] = []
      while (seen.length < 20) seen.push((await watcher.expect('message')).offset)
      t.strictSame(seen, range(1, 20), `${rooms[i] as string}: every offset once, in order`)
      t.strictSame(offsets(await app.chat.history(rooms[i] as string)), range(1, 20))
    }
  })

  t.test('two connections to one file share the numbering', async (t) => {
    const path = newFile()
    const a = await open(t, { path })
    const b = await open(t, { path })
    const got: number[] = []
    for (let i = 0; i < 10; i++) {
      got.push((await a.append(message('x'))).message.offset)
      got.push((await b.append(message('x'))).message.offset)
    }
    t.strictSame(got, range(1, 20))
    t.equal(await a.epoch('x'), await b.epoch('x'))
  })

  t.test('three processes appending to one file at once', async (t) => {
    const path = newFile()
    const workers = [0, 1, 2].map((n) => child(`
      const store = sqliteStore({ path: ${JSON.stringify(path)} })
      await store.init()
      console.log('ready')
      // Every worker starts when the test says so, so their appends overlap.
      await new Promise((resolve) => process.stdin.once('data', resolve))
      const got = []
      for (let i = 0; i < 300; i++) {
        const room = i % 2 === 0 ? 'even' : 'odd'
        got.push([room, (await store.append({ room, ts: Date.now(), from: { id: 'w${n}', name: 'w' }, text: String(i) })).message.offset])
        await new Promise(setImmediate)
      }
      await store.close()
      console.log(JSON.stringify(got))
      process.stdin.destroy()
    `))
    t.teardown(() => { for (const w of workers) w.kill('SIGKILL') })
    const lines = workers.map((w) => createInterface({ input: w.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]())
    for (const line of lines) t.equal((await line.next()).value, 'ready')
    for (const w of workers) w.stdin?.write('go\n')
    const results = await Promise.all(lines.map(async (line) => JSON.parse((await line.next()).value as string) as Array<[string, number]>))
    await Promise.all(workers.map(async (w) => { if (w.exitCode === null) await once(w, 'exit') }))
    t.strictSame(workers.map((w) => w.exitCode), [0, 0, 0])

    for (const room of ['even', 'odd']) {
      const all = results.flat().filter(([r]) => r === room).map(([, offset]) => offset).sort((x, y) => x - y)
      t.strictSame(all, range(1, 450), `${room}: 450 offsets handed out once each`)
      for (const mine of results) {
        const own = mine.filter(([r]) => r === room).map(([, offset]) => offset)
        t.ok(own.every((offset, i) => i === 0 || offset > (own[i - 1] as number)), 'each worker sees its offsets grow')
      }
    }
    t.strictSame(rowsByRoom(inspect(t, path)), { even: { count: 450, first: 1, last: 450 }, odd: { count: 450, first: 1, last: 450 } })
  })
})

t.test('a bad environment fails register with FST_CHAT_STORE_UNAVAILABLE naming the path', async (t) => {
  /** Registers the plugin with an SQLite store on `path` and returns the error `ready()` rejects with. */
  async function registerError (t: Test, path: string, opts: Partial<SqliteStoreOptions> = {}): Promise<Error & { code?: string }> {
    const store = sqliteStore({ ...opts, path })
    const app = Fastify()
    t.teardown(async () => {
      await app.close().catch(() => {})
      await store.close()
    })
    app.register(fastifyChat, { store })
    const err = await app.ready().then(() => null, (err: Error) => err)
    if (err === null) throw new Error(`register succeeded for ${path}`)
    t.equal((err as { code?: string }).code, 'FST_CHAT_STORE_UNAVAILABLE')
    t.ok(err.message.startsWith(`fastify-chat: cannot open history store at ${path}: `), err.message)
    return err
  }

  // Tests run as root, which may write to a chmod-ed read-only directory, so
  // "not writable" is made of things no permission bit can fix: a regular file
  // where a directory should be, a path that is a directory, and procfs.
  t.test('a regular file where its directory should be', async (t) => {
    const file = joinPath(dir, 'plain-file')
    await writeFile(file, 'not a directory')
    // mkdir fails with EEXIST for the directory itself, ENOTDIR below it.
    const beside = await registerError(t, joinPath(file, 'chat.db'))
    t.ok(beside.message.endsWith(`: ${file} is not a directory`), beside.message)
    t.match(beside.cause, { code: 'EEXIST' }, 'the fs error is the cause, not the error')
    const below = await registerError(t, joinPath(file, 'sub', 'chat.db'))
    t.ok(below.message.endsWith(`: cannot create directory ${joinPath(file, 'sub')}: ${file} is not a directory`), below.message)
    t.match(below.cause, { code: 'ENOTDIR' })
  })

  t.test('a path that is a directory', async (t) => {
    const path = joinPath(dir, 'a-directory')
    await mkdir(path)
    t.match((await registerError(t, path)).message, 'the path is a directory')
  })

  // procfs refuses to create files whatever the caller's rights, root included.
  t.test('a directory nobody can create files in', { skip: process.platform !== 'linux' && 'procfs is Linux only' }, async (t) => {
    t.match((await registerError(t, '/proc/fastify-chat.db')).message, 'unable to open database file (can the directory /proc be written?)')
  })

  t.test('a file that is not a SQLite database', async (t) => {
    const path = newFile()
    await writeFile(path, 'these are not the bytes you are looking for\n'.repeat(100))
    t.match((await registerError(t, path)).message, 'file is not a database')
  })

  t.test('a file written by a newer version', async (t) => {
    const path = newFile()
    const db = new Database(path)
    db.pragma('user_version = 99')
    db.close()
    t.match((await registerError(t, path)).message, 'written by a newer fastify-chat (schema 99')
  })

  t.test('a database another connection keeps locked past busyTimeoutMs', async (t) => {
    const path = newFile()
    await (await open(t, { path })).close()
    const holder = inspect(t, path)
    holder.exec('BEGIN EXCLUSIVE')
    const started = Date.now()
    const err = await registerError(t, path, { busyTimeoutMs: 100 })
    t.ok(Date.now() - started >= 90, 'it waited for the lock')
    t.match(err.message, 'database is locked (another connection held it for longer than busyTimeoutMs, 100 ms)')

    holder.exec('COMMIT')
    const store = await open(t, { path, busyTimeoutMs: 100 })
    t.equal((await store.append(message('a'))).message.offset, 1, 'the same file opens once the lock is gone')
  })

  t.test('better-sqlite3 not installed', async (t) => {
    // A resolve hook makes the import fail the way it does where the optional
    // peer dependency was never installed. This runs the built module on plain
    // Node, as users do: tap's TypeScript loader reports a missing package
    // without Node's ERR_MODULE_NOT_FOUND code.
    const hook = `export async function resolve (specifier, context, next) {
      return next(specifier === 'better-sqlite3' ? 'better-sqlite3-not-installed' : specifier, context)
    }`
    const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)})`
    const built = new URL('../../dist/lib/stores/sqlite-store.js', import.meta.url).href
    const { stdout } = await run(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', `
      const { sqliteStore } = await import(${JSON.stringify(built)})
      const err = await sqliteStore({ path: ':memory:' }).init().then(() => null, (err) => err)
      console.log(JSON.stringify({ code: err?.code, message: err?.message, cause: err?.cause?.code }))
    `])
    t.strictSame(JSON.parse(stdout), {
      code: 'FST_CHAT_STORE_UNAVAILABLE',
      message: 'fastify-chat: cannot open history store at :memory:: better-sqlite3 is not installed (npm install better-sqlite3)',
      cause: 'ERR_MODULE_NOT_FOUND'
    })
  })

  t.test('a failed open can be retried once the environment is fixed', async (t) => {
    const path = joinPath(dir, 'made-later', 'chat.db')
    await writeFile(joinPath(dir, 'made-later'), 'in the way')
    const store = sqliteStore({ path })
    t.teardown(() => store.close())
    await t.rejects(store.init(), { code: 'FST_CHAT_STORE_UNAVAILABLE' })
    await rm(joinPath(dir, 'made-later'))
    await t.resolves(store.init())
    t.equal((await store.append(message('a'))).message.offset, 1)
  })
})

t.test('before pages back through everything the file keeps, past historySize, down the primary key', async (t) => {
  const path = newFile()
  const store = sqliteStore({ path, historySize: 3 })
  t.teardown(() => store.close())
  const fresh = await store.before('a', 5, 5)
  t.strictSame([fresh.messages, fresh.more, fresh.offset], [[], false, 0], 'no init() needed, and a room never written is empty')
  for (let i = 1; i <= 10; i++) await store.append(message('a', `m${i}`))
  await store.append(message('b'))
  t.strictSame(offsets((await store.recent('a', 100)).messages), [8, 9, 10], 'historySize bounds recent')
  t.strictSame(await store.before('a', 11, 5).then((p) => [offsets(p.messages), p.more]), [[6, 7, 8, 9, 10], true], 'but not before')
  t.strictSame(await store.before('a', 6, 10).then((p) => [offsets(p.messages), p.more]), [[1, 2, 3, 4, 5], false])
  t.strictSame(await store.before('a', 11, 0).then((p) => [p.messages, p.more]), [[], true], 'limit 0: nothing, and whether older are kept')
  const plan = inspect(t, path).prepare('EXPLAIN QUERY PLAN SELECT seq, ts, from_id, from_name, text, cid FROM messages WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?')
    .all('a', 11, 6) as Array<{ detail: string }>
  t.match(plan.map((row) => row.detail).join('; '), /^SEARCH messages USING (PRIMARY KEY|INDEX sqlite_autoindex_messages_1) \(room=\? AND seq<\?\)$/, 'one search of the primary key: no scan, no sort')
})

t.test('retain.count keeps the latest N messages per room', async (t) => {
  const path = newFile()
  const store = await open(t, { path, retain: { count: 3 } })
  for (let i = 1; i <= 10; i++) await store.append(message('a', `m${i}`))
  await store.append(message('b'))
  await store.append(message('b'))

  t.strictSame(rowsByRoom(inspect(t, path)), { a: { count: 3, first: 8, last: 10 }, b: { count: 2, first: 1, last: 2 } })
  t.strictSame(offsets((await store.recent('a', 100)).messages), [8, 9, 10])
  t.strictSame(offsets((await store.since('a', 7))?.messages), [8, 9, 10])
  t.equal(await store.since('a', 6), null, 'a gap once messages were pruned')
  t.strictSame(await store.before('a', 10, 10).then((p) => [offsets(p.messages), p.more]), [[8, 9], false], 'nothing older than what is kept')
  t.equal((await store.append(message('a'))).message.offset, 11, 'numbering goes on')
})

t.test('the file keeps each room\'s latest cids with their messages, however retain prunes', async (t) => {
  const path = newFile()
  const store = await open(t, { path, retain: { count: 3 } })
  const last = CID_WINDOW + 10
  for (let i = 1; i <= last; i++) await store.append(withCid(`c${i}`, 'a', `m${i}`))
  await store.append(message('a', 'no cid'))
  await store.append(withCid('c1', 'b', 'b1'))

  const db = inspect(t, path)
  t.strictSame(db.prepare('SELECT room, COUNT(*) AS count, MIN(seq) AS first, MAX(seq) AS last FROM cids GROUP BY room ORDER BY room').all(), [
    { room: 'a', count: CID_WINDOW, first: 11, last },
    { room: 'b', count: 1, first: 1, last: 1 }
  ], `${CID_WINDOW} per room, the latest`)
  t.strictSame(rowsByRoom(db).a, { count: 3, first: last - 1, last: last + 1 }, 'while retain keeps 3 messages')
  const plan = db.prepare('EXPLAIN QUERY PLAN SELECT seq, ts, from_id, from_name, text, cid FROM cids WHERE room = ? AND cid = ?').all('a', 'c11') as Array<{ detail: string }>
  t.match(plan.map((step) => step.detail), ['SEARCH cids USING PRIMARY KEY (room=? AND cid=?)'], 'a cid is found by one probe, not a scan of the room')
  t.strictSame(await store.append(withCid('c11', 'a', 'resent')), { message: { ...withCid('c11', 'a', 'm11'), offset: 11 }, duplicate: true })
  t.strictSame(await store.append(withCid('c10', 'a', 'resent')), { message: { ...withCid('c10', 'a', 'resent'), offset: last + 2 }, duplicate: false })
})

t.test('a schema 1 file is migrated and remembers the latest cids its messages hold', async (t) => {
  const path = newFile()
  const old = new Database(path)
  old.exec(`
    CREATE TABLE rooms (name TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_offset INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, from_id TEXT NOT NULL,
      from_name TEXT NOT NULL, text TEXT NOT NULL, cid TEXT, PRIMARY KEY (room, seq));
  `)
  // Room a: offsets 1 to CID_WINDOW + 2, each with a cid but the last. Room b:
  // two messages with one cid (schema 1 did not prevent it), then one without.
  const last = CID_WINDOW + 2
  const row = old.prepare('INSERT INTO messages VALUES (?, ?, 1700000000000, \'u1\', \'alice\', ?, ?)')
  for (let seq = 1; seq <= last; seq++) row.run('a', seq, `m${seq}`, seq === last ? null : `c${seq}`)
  row.run('b', 1, 'b1', 'twice')
  row.run('b', 2, 'b2', 'twice')
  row.run('b', 3, 'b3', null)
  old.prepare('INSERT INTO rooms VALUES (?, ?, ?)').run('a', 'epoch-a', last)
  old.prepare('INSERT INTO rooms VALUES (?, ?, ?)').run('b', 'epoch-b', 3)
  old.pragma('user_version = 1')
  old.close()

  const store = await open(t, { path })
  t.equal(await store.epoch('a'), 'epoch-a', 'the history is kept')
  t.strictSame(offsets((await store.recent('a', 2)).messages), [last - 1, last])
  t.strictSame(await store.append(withCid('c2', 'a', 'resent')), { message: { ...withCid('c2', 'a', 'm2'), offset: 2 }, duplicate: true }, `the latest ${CID_WINDOW} cids are remembered`)
  t.equal((await store.append(withCid(`c${last - 1}`, 'a'))).duplicate, true)
  t.strictSame(await store.append(withCid('c1', 'a', 'resent')), { message: { ...withCid('c1', 'a', 'resent'), offset: last + 1 }, duplicate: false }, 'the one before is not')
  t.equal((await store.append(withCid('c2', 'a'))).duplicate, false, 'the window slides on from the migrated cids: c1 pushed c2 out')
  t.equal((await store.append(withCid('c4', 'a'))).duplicate, true)
  t.strictSame(await store.append(withCid('twice', 'b', 'resent')), { message: { ...withCid('twice', 'b', 'b2'), offset: 2 }, duplicate: true }, 'a cid stored twice gives its latest message')
  t.equal((await store.append(withCid('x', 'b'))).message.offset, 4)
  t.equal((await store.append(withCid('x', 'b'))).duplicate, true)
  t.equal((await store.append(withCid('twice', 'b'))).duplicate, true, 'and stays remembered')
  const withMeta: NewMessage = { ...withCid('m', 'b'), meta: { replyTo: 1 } }
  t.strictSame(await store.append(withMeta), { message: { ...withMeta, offset: 5 }, duplicate: false }, 'messages keep a meta from now on')
  t.strictSame(await store.append(withMeta), { message: { ...withMeta, offset: 5 }, duplicate: true }, 'and so does their cid')
  t.equal(inspect(t, path).pragma('user_version', { simple: true }), 3)
})

// The tables as schema 2 made them: before meta, edits and deletes had columns.
const SCHEMA_2_TABLES = `
CREATE TABLE rooms (name TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_offset INTEGER NOT NULL, cid_count INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, from_id TEXT NOT NULL,
  from_name TEXT NOT NULL, text TEXT NOT NULL, cid TEXT, PRIMARY KEY (room, seq));
CREATE TABLE cids (room TEXT NOT NULL, cid TEXT NOT NULL, slot INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
  from_id TEXT NOT NULL, from_name TEXT NOT NULL, text TEXT NOT NULL, PRIMARY KEY (room, cid)) WITHOUT ROWID;
CREATE UNIQUE INDEX cids_by_slot ON cids (room, slot);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;`

t.test('a schema 2 file is migrated in place: its messages have no meta, new ones keep theirs', async (t) => {
  const path = newFile()
  const old = new Database(path)
  old.exec(`
    ${SCHEMA_2_TABLES}
    INSERT INTO rooms VALUES ('a', 'epoch-a', 2, 1);
    INSERT INTO messages VALUES ('a', 1, 1700000000000, 'u1', 'alice', 'old', 'c-old'), ('a', 2, 1700000000000, 'u1', 'alice', 'older cid-less', NULL);
    INSERT INTO cids VALUES ('a', 'c-old', 0, 1, 1700000000000, 'u1', 'alice', 'old');
    INSERT INTO meta VALUES ('resume_secret', 'kept-secret');
  `)
  old.pragma('user_version = 2')
  old.close()

  const store = await open(t, { path })
  t.equal(inspect(t, path).pragma('user_version', { simple: true }), 3)
  t.equal(await store.secret(), 'kept-secret', 'the rest of the file is kept')
  t.equal(await store.epoch('a'), 'epoch-a')
  const before = [{ ...withCid('c-old', 'a', 'old'), offset: 1 }, { ...message('a', 'older cid-less'), offset: 2 }]
  t.strictSame((await store.recent('a', 10)).messages, before, 'the old messages, without a meta key')
  t.strictSame(await store.append(withCid('c-old', 'a', 'resent')), { message: before[0], duplicate: true }, 'an old cid is still remembered')
  const withMeta: NewMessage = { ...withCid('c-new', 'a', 'new'), meta: { replyTo: 1, mentions: ['u2'] } }
  t.strictSame(await store.append(withMeta), { message: { ...withMeta, offset: 3 }, duplicate: false })
  t.strictSame((await store.since('a', 2))?.messages, [{ ...withMeta, offset: 3 }])
  t.strictSame(await store.append(withMeta), { message: { ...withMeta, offset: 3 }, duplicate: true }, 'its cid keeps the meta')
  t.strictSame(inspect(t, path).prepare('SELECT seq, meta FROM messages ORDER BY seq').all(), [
    { seq: 1, meta: null }, { seq: 2, meta: null }, { seq: 3, meta: '{"replyTo":1,"mentions":["u2"]}' }
  ], 'meta is JSON text, NULL when there is none')
  await store.close()
  const again = await open(t, { path })
  t.strictSame((await again.recent('a', 10)).messages.at(-1), { ...withMeta, offset: 3 }, 'opening the migrated file again changes nothing')
})

t.test('retain.count applies to the whole file when it opens', async (t) => {
  const path = newFile()
  const before = await open(t, { path })
  for (let i = 1; i <= 10; i++) await before.append(message('a'))
  for (let i = 1; i <= 2; i++) await before.append(message('b'))
  await before.close()

  const after = await open(t, { path, retain: { count: 4 } })
  t.strictSame(rowsByRoom(inspect(t, path)), { a: { count: 4, first: 7, last: 10 }, b: { count: 2, first: 1, last: 2 } })
  t.equal((await after.recent('a', 10)).offset, 10)
})

t.test('retain.maxAgeMs', async (t) => {
  const hour = 3_600_000

  t.test('deletes older messages when the file opens', async (t) => {
    const path = newFile()
    const now = Date.now()
    const before = await open(t, { path })
    for (let i = 1; i <= 3; i++) await before.append(message('a', `old ${i}`, now - 2 * hour))
    for (let i = 4; i <= 5; i++) await before.append(message('a', `new ${i}`, now))
    await before.append(message('b', 'old', now - 2 * hour))
    const epochB = await before.epoch('b')
    await before.close()

    const after = await open(t, { path, retain: { maxAgeMs: hour } })
    t.strictSame(rowsByRoom(inspect(t, path)), { a: { count: 2, first: 4, last: 5 } })
    t.strictSame((await after.recent('a', 10)).messages.map((m) => m.text), ['new 4', 'new 5'])
    t.strictSame(offsets((await after.since('a', 3))?.messages), [4, 5])
    t.equal(await after.since('a', 2), null)
    const b = await after.recent('b', 10)
    t.strictSame([b.epoch, b.offset, b.messages], [epochB, 1, []], 'an emptied room keeps its epoch and offset')
    t.equal((await after.append(message('b', 'new', now))).message.offset, 2)
  })

  t.test('prunes on append at most once per interval', async (t) => {
    let clock = 1_800_000_000_000
    t.capture(Date, 'now', () => clock)
    const path = newFile()
    const store = await open(t, { path, retain: { maxAgeMs: 1000 } })
    await store.append(message('a', 'old 1', clock - 5000))
    await store.append(message('a', 'old 2', clock - 5000))
    clock += 999
    await store.append(message('a', 'fresh', clock))
    t.equal(rowsByRoom(inspect(t, path)).a?.count, 3, 'within the interval nothing is pruned')

    clock += 1
    await store.append(message('a', 'fresher', clock))
    t.strictSame((await store.recent('a', 10)).messages.map((m) => m.text), ['fresh', 'fresher'])
    t.equal(await store.since('a', 1), null)
  })

  t.test('deletes the remembered cids of the messages it deletes', async (t) => {
    let clock = 1_800_000_000_000
    t.capture(Date, 'now', () => clock)
    const path = newFile()
    const store = await open(t, { path, retain: { maxAgeMs: 1000 } })
    await store.append(withCid('c-old', 'a', 'old', clock - 5000))
    await store.append(withCid('c-fresh', 'a', 'fresh', clock))
    clock += 1000
    await store.append(message('a', 'prunes', clock))
    t.strictSame(inspect(t, path).prepare('SELECT cid, text FROM cids').all(), [{ cid: 'c-fresh', text: 'fresh' }], 'no copy of a deleted text is left')
    t.equal((await store.append(withCid('c-fresh', 'a', 'fresh', clock))).duplicate, true)
    t.strictSame(await store.append(withCid('c-old', 'a', 'old', clock)), { message: { ...withCid('c-old', 'a', 'old', clock), offset: 4 }, duplicate: false }, 'a resend of a deleted message is a new one')
  })
})

t.test('a store passed to the plugin is the caller\'s: app.close() leaves it open', async (t) => {
  const store = sqliteStore({ path: ':memory:' })
  t.teardown(() => store.close())
  const app = Fastify()
  await app.register(fastifyChat, { store })
  await app.chat.broadcast('lobby', 'hi')
  await app.close()
  t.equal((await store.append(message('lobby'))).message.offset, 2)
})

t.test('close', async (t) => {
  t.test('later calls fail, and closing twice is harmless', async (t) => {
    const store = await open(t, { path: newFile() })
    await store.append(message('a'))
    await store.close()
    await t.resolves(store.close())
    const calls: Array<() => Promise<unknown>> = [() => store.append(message('a')), () => store.recent('a', 1), () => store.since('a', 0), () => store.epoch('a'), () => store.before('a', 2, 1), () => store.init()]
    for (const call of calls) {
      await t.rejects(call, { code: 'FST_CHAT_STORE_UNAVAILABLE', message: /the store is closed$/ })
    }
  })

  t.test('before init, or while it runs', async (t) => {
    await t.resolves(sqliteStore({ path: newFile() }).close(), 'never opened')
    const store = sqliteStore({ path: newFile() })
    const opening = store.init()
    await store.close()
    await t.rejects(opening, { code: 'FST_CHAT_STORE_UNAVAILABLE', message: /the store is closed$/ })
  })
})

t.test('the resume secret', async (t) => {
  t.test('is made once and kept in the file: a reopened store and a second connection read the same one', async (t) => {
    const path = newFile()
    const first = await open(t, { path })
    const secret = await first.secret()
    t.match(secret, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url')
    t.equal(await first.secret(), secret, 'asked again, the same')
    t.equal(await (await open(t, { path })).secret(), secret, 'another connection to the file')
    await first.close()
    t.equal(await (await open(t, { path })).secret(), secret, 'after a reopen')
    t.strictSame(inspect(t, path).prepare('SELECT key FROM meta').all(), [{ key: 'resume_secret' }])
    t.not(await (await open(t, { path: newFile() })).secret(), secret, 'another file has its own')
  })

  t.test('a file from before the meta table gets it when it opens, history intact', async (t) => {
    const path = newFile()
    const before = await open(t, { path })
    await before.append(message('r', 'kept'))
    await before.close()
    const db = new Database(path)
    db.exec('DROP TABLE meta')
    db.close()
    const after = await open(t, { path })
    t.match(await after.secret(), /^[A-Za-z0-9_-]{43}$/)
    t.strictSame((await after.recent('r', 10)).messages.map((m) => m.text), ['kept'])
  })

  t.test('a store opens itself to read it; a closed one fails', async (t) => {
    const store = sqliteStore({ path: ':memory:' })
    const secret = await store.secret()
    t.equal(await store.secret(), secret, 'in memory, kept as long as the store')
    await store.close()
    await t.rejects(store.secret(), { code: 'FST_CHAT_STORE_UNAVAILABLE' })
  })
})

t.test('a schema 2 file gains the entry columns in place: its rows stay messages, its cids keep working, edits go in', async (t) => {
  const path = newFile()
  const old = new Database(path)
  old.exec(`
    ${SCHEMA_2_TABLES}
    INSERT INTO rooms VALUES ('a', 'epoch-a', 2, 1);
    INSERT INTO messages VALUES ('a', 1, 1700000000000, 'u1', 'alice', 'm1', 'c1');
    INSERT INTO messages VALUES ('a', 2, 1700000000000, 'u1', 'alice', 'm2', NULL);
    INSERT INTO cids VALUES ('a', 'c1', 0, 1, 1700000000000, 'u1', 'alice', 'm1');
  `)
  old.pragma('user_version = 2')
  old.close()

  const store = await open(t, { path })
  t.equal(await store.epoch('a'), 'epoch-a')
  t.strictSame((await store.recent('a', 10)).messages, [{ ...withCid('c1', 'a', 'm1'), offset: 1 }, { ...message('a', 'm2'), offset: 2 }], 'old rows are messages, with no type key')
  t.strictSame(await store.append(withCid('c1', 'a', 'resent')), { message: { ...withCid('c1', 'a', 'm1'), offset: 1 }, duplicate: true }, 'a remembered cid')
  const edit: NewMessage = { ...withCid('e1', 'a', 'm1, fixed'), type: 'edit', of: 1 }
  t.strictSame(await store.append(edit), { message: { ...edit, offset: 3 }, duplicate: false })
  t.strictSame(await store.entry('a', 3), { ...edit, offset: 3 })
  t.strictSame((await store.append(edit)).message, { ...edit, offset: 3 }, 'an edit\'s cid gives the edit back')
  await store.close()
  const db = inspect(t, path)
  t.equal(db.pragma('user_version', { simple: true }), 3)
  t.strictSame(db.prepare('SELECT seq, kind, of_seq FROM messages ORDER BY seq').all(), [{ seq: 1, kind: null, of_seq: null }, { seq: 2, kind: null, of_seq: null }, { seq: 3, kind: 'edit', of_seq: 1 }])
})
