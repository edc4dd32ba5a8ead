// SQLite history under a real crash: the server runs in a child process (the
// built package, test/fixtures/sqlite-node.mjs) and is killed with SIGKILL.
import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import Database from 'better-sqlite3'
import t from 'tap'
import type { Test } from 'tap'
import type { ChatMessage, JoinedFrame } from '../../index.js'
import { Client, within } from '../helpers/chat.js'

const run = promisify(execFile)
const fixture = new URL('../fixtures/sqlite-node.mjs', import.meta.url).pathname
const projectDir = new URL('../..', import.meta.url).pathname
const START_MS = 10_000
const EXIT_MS = 5000

/**
 * A temp dir whose file system lets `chattr +i` make a file immutable (ext4
 * does, tmpfs and overlayfs do not), or the reason none of those tried does.
 */
async function immutableCapableDir (): Promise<{ dir: string, skip: false | string }> {
  const reasons: string[] = []
  for (const parent of [tmpdir(), projectDir]) {
    const dir = await mkdtemp(join(parent, 'fastify-chat-sqlite-crash-'))
    const probe = join(dir, 'probe')
    try {
      await writeFile(probe, '')
      await run('chattr', ['+i', probe])
      await run('chattr', ['-i', probe])
      return { dir, skip: false }
    } catch (err) {
      reasons.push(`${parent}: ${(err as Error).message.trim()}`)
      await rm(dir, { recursive: true, force: true })
    }
  }
  return { dir: await mkdtemp(join(tmpdir(), 'fastify-chat-sqlite-crash-')), skip: `chattr +i works in none of the temp dirs tried (${reasons.join('; ')})` }
}

const { dir, skip: noChattr } = await immutableCapableDir()
t.teardown(() => rm(dir, { recursive: true, force: true }))
if (noChattr !== false) t.comment(`skipping the immutable -shm test: ${noChattr}`)

type Started = { port: number } | { error: { code: string, message: string } }

interface Child {
  process: ChildProcess
  /** Its exit code and signal, once it has exited. */
  exit: Promise<[number | null, NodeJS.Signals | null]>
}

/** Starts the fixture on `path` (killed with SIGKILL when the test ends); resolves with its first line, parsed. */
async function start (t: Test, path: string): Promise<{ child: Child, started: Started }> {
  const child = spawn(process.execPath, [fixture], { env: { ...process.env, CHAT_DB: path }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const exit = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const silent = exit.then(([code, signal]) => { throw new Error(`the child server exited (${String(signal ?? code)}) before saying anything`) })
  const line = once(createInterface({ input: child.stdout }), 'line') as Promise<[string]>
  const [first] = await within(Promise.race([line, silent]), START_MS, 'the child server to start')
  return { child: { process: child, exit }, started: JSON.parse(first) as Started }
}

/** A chat server on `path` in a child process, and its URL. */
async function server (t: Test, path: string): Promise<{ child: Child, url: string }> {
  const { child, started } = await start(t, path)
  if (!('port' in started)) throw new Error(`the child server did not start: ${started.error.message}`)
  return { child, url: `ws://127.0.0.1:${started.port}` }
}

/** A client connected to `url` and joined to the default room, with its `joined`; terminated when the test ends. */
async function joined (t: Test, url: string, query: string): Promise<{ client: Client, frame: JoinedFrame }> {
  const client = await Client.connect(url, `/chat${query}`)
  t.teardown(() => client.ws.terminate())
  await client.expect('welcome')
  return { client, frame: await client.expect('joined') }
}

/** SIGKILL, for real: no close hook runs, and the process checkpoints and flushes nothing. */
async function crash (child: Child): Promise<void> {
  child.process.kill('SIGKILL')
  const [, signal] = await within(child.exit, EXIT_MS, 'the child server to die')
  if (signal !== 'SIGKILL') throw new Error(`the child server ended with ${String(signal)}, not SIGKILL`)
}

t.test('a message resent after a kill -9 is stored once, and the sender gets the stored copy', async (t) => {
  const path = join(dir, 'resent.db')
  const first = await server(t, path)
  const alice = await joined(t, first.url, '?name=alice')
  const sent = { type: 'message', text: 'sent just before the crash', cid: 'alice-1' }
  alice.client.send(sent)
  const echo = await alice.client.expect('message')
  t.match(echo, { offset: 1, text: sent.text, cid: sent.cid }, 'stored and echoed')

  await crash(first.child)
  await within(alice.client.closed, EXIT_MS, 'the socket to drop')
  t.ok(existsSync(`${path}-wal`), 'the crash left the WAL behind: nobody closed the file')

  const second = await server(t, path)
  const bob = await joined(t, second.url, '?name=bob')
  t.strictSame(bob.frame.history.map((m: ChatMessage) => [m.offset, m.text]), [[1, sent.text]], 'the message survived the crash')
  const back = await joined(t, second.url, `?name=alice&since=${encodeURIComponent(`${alice.frame.epoch}:0`)}`)
  t.match(back.frame, { epoch: alice.frame.epoch, offset: 1, recovered: true })
  await bob.client.expect('presence')

  // The client never saw its echo arrive for sure, so it sends again, same cid.
  back.client.send(sent)
  t.strictSame(await back.client.expect('message'), echo, 'the stored copy: same offset, same message')
  back.client.send({ type: 'message', text: 'after the resend', cid: 'alice-2' })
  t.match(await back.client.expect('message'), { offset: 2, text: 'after the resend' })
  t.match(await bob.client.expect('message'), { offset: 2, text: 'after the resend' }, 'the resend reached nobody else: the next message comes next')

  const carol = await joined(t, second.url, '?name=carol')
  t.strictSame(carol.frame.history.map((m: ChatMessage) => [m.offset, m.text]), [[1, sent.text], [2, 'after the resend']], 'the history holds it once')
  const db = new Database(path, { readonly: true })
  t.teardown(() => db.close())
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM messages WHERE cid = ?').get(sent.cid) as { n: number }).n, 1, 'one row in the file')
})

t.test('a WAL shared-memory file that cannot be written fails register with FST_CHAT_STORE_UNAVAILABLE naming it', { skip: noChattr }, async (t) => {
  const path = join(dir, 'immutable-shm.db')
  const first = await server(t, path)
  const alice = await joined(t, first.url, '?name=alice')
  alice.client.send({ type: 'message', text: 'in the WAL', cid: 'a-1' })
  await alice.client.expect('message')
  await crash(first.child)

  const shm = `${path}-shm`
  t.ok(existsSync(shm), 'the crash left the -shm behind')
  await run('chattr', ['+i', shm])
  t.teardown(async () => { await run('chattr', ['-i', shm]) })

  // SQLite alone fails with "attempt to write a readonly database", which names nothing.
  const refused = await start(t, path)
  t.match(refused.started, { error: { code: 'FST_CHAT_STORE_UNAVAILABLE' } })
  const { message } = (refused.started as { error: { message: string } }).error
  t.ok(message.startsWith(`fastify-chat: cannot open history store at ${path}: `), message)
  t.ok(message.includes(shm), `the message names ${shm}: ${message}`)
  t.strictSame(await within(refused.child.exit, EXIT_MS, 'the refused server to exit'), [1, null], 'it exits on the error, no signal')

  await run('chattr', ['-i', shm])
  const fixed = await server(t, path)
  const back = await joined(t, fixed.url, '?name=alice')
  t.strictSame(back.frame.history.map((m: ChatMessage) => m.text), ['in the WAL'], 'once the -shm can be written, the file opens with nothing lost')
})
