import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join as joinPath } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyChatOptions } from '../index.js'
import { sqliteStore } from '../lib/stores/sqlite-store.js'
import { Client, listen } from './helpers/chat.js'

const dir = await mkdtemp(joinPath(tmpdir(), 'fastify-chat-secret-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

/** The `welcome` of a new socket to `url`, resuming with `token` when given; the socket is closed before returning. */
async function welcome (url: string, token?: string): Promise<{ id: string, resume: string }> {
  const client = await Client.connect(url, `/chat?room=lobby${token === undefined ? '' : `&resume=${encodeURIComponent(token)}`}`)
  const frame = await client.expect('welcome')
  client.close()
  await client.closed
  if (frame.resume === undefined) throw new Error('a welcome without a resume token')
  return { id: frame.id, resume: frame.resume }
}

/** Starts a server, takes `welcome` from it (resuming with `token`), and closes it again. */
async function serve (t: Test, opts: FastifyChatOptions, token?: string): Promise<{ id: string, resume: string }> {
  const { app, url } = await listen(t, opts)
  try {
    return await welcome(url, token)
  } finally {
    await app.close()
  }
}

t.test('a server restarted on the same SQLite file verifies the resume tokens it handed out: the client keeps its id', async (t) => {
  const path = joinPath(dir, 'restart.db')
  const before = sqliteStore({ path })
  t.teardown(() => before.close())
  const first = await serve(t, { store: before })
  await before.close()

  const after = sqliteStore({ path })
  t.teardown(() => after.close())
  const { app, url } = await listen(t, { store: after })
  const resumed = await welcome(url, first.resume)
  t.equal(resumed.id, first.id, 'same id after the restart')
  const forged = await welcome(url, `${first.id}.${'A'.repeat(22)}`)
  t.not(forged.id, first.id, 'a token the file\'s key did not sign is ignored')
  await app.close()

  const elsewhere = sqliteStore({ path: joinPath(dir, 'other.db') })
  t.teardown(() => elsewhere.close())
  t.not((await serve(t, { store: elsewhere }, first.resume)).id, first.id, 'another file has another key')
})

t.test('the in-memory default keeps no key: a restarted server gives a new id', async (t) => {
  const first = await serve(t, {})
  const again = await serve(t, {}, first.resume)
  t.not(again.id, first.id)
})

t.test('with the secret option, servers accept each other\'s tokens, whatever their store', async (t) => {
  const secret = 'k'.repeat(16) + 'e'.repeat(16)
  const a = await listen(t, { secret })
  const b = await listen(t, { secret })
  const first = await welcome(a.url)
  t.equal((await welcome(b.url, first.resume)).id, first.id, 'b verifies a\'s token')
  const store = sqliteStore({ path: joinPath(dir, 'with-option.db') })
  t.teardown(() => store.close())
  const c = await listen(t, { secret, store })
  t.equal((await welcome(c.url, first.resume)).id, first.id, 'the option wins over the file\'s key')
  const d = await listen(t, { secret: 'another key of at least 32 characters' })
  t.not((await welcome(d.url, first.resume)).id, first.id, 'another secret, another id')
})
