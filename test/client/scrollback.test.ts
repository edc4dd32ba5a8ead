import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import WebSocket from 'ws'
import { connect } from '../../lib/client.js'
import type { ChatConnection, HistoryError } from '../../lib/client.js'
import { Emitter } from '../../lib/client/emitter.js'
import { Scrollback } from '../../lib/client/scrollback.js'
import { sqliteStore } from '../../index.js'
import type { ChatEvents } from '../../lib/client/types.js'
import type { ChatMessage, HistoryFrame, JoinedFrame } from '../../lib/protocol/wire.js'
import { listen, within } from '../helpers/chat.js'

const message = (offset: number): ChatMessage => ({ room: 'a', offset, ts: 0, from: { id: 'u', name: 'u' }, text: String(offset) })
const joined = (epoch: string, offsets: number[], offset = offsets.at(-1) ?? 0): JoinedFrame =>
  ({ type: 'joined', room: 'a', epoch, offset, recovered: false, history: offsets.map(message), users: [], count: 1 })
const page = (epoch: string, offsets: number[], more: boolean): HistoryFrame =>
  ({ type: 'history', room: 'a', epoch, messages: offsets.map(message), more })

t.test('requests are checked before they go', async (t) => {
  t.throws(() => Scrollback.request('no room!', { before: 5, limit: 5 }), TypeError)
  t.throws(() => Scrollback.request('a', { before: -1, limit: 5 }), TypeError)
  t.throws(() => Scrollback.request('a', { before: 1.5, limit: 5 }), TypeError)
  t.throws(() => Scrollback.request('a', { before: 5, limit: 0 }), TypeError)
  t.throws(() => Scrollback.request('a', { before: 5, limit: 1001 }), TypeError)
  const request = Scrollback.request('a', { before: 5, limit: 1000 })
  t.match(request, { type: 'history', room: 'a', before: 5, limit: 1000, cid: /^[0-9a-f]{24}$/ })
})

t.test('loadOlder asks before the oldest held, moves it back with each page, and stops when none are left', async (t) => {
  const events = new Emitter<ChatEvents>()
  const pages: HistoryFrame[] = []
  events.on('history', (p) => pages.push(p))
  const scroll = new Scrollback(events)
  await t.rejects(scroll.loadOlder('a', 2, async () => page('e', [], false)), { code: 'not_in_room' })
  scroll.onJoined(joined('e', [5, 6]))
  t.equal(scroll.more('a'), true)
  const asked: number[] = []
  const answers = [page('e', [3, 4], true), page('e', [1, 2], false)]
  const fetch = async ({ before }: { before: number }): Promise<HistoryFrame> => {
    asked.push(before)
    return answers.shift() as HistoryFrame
  }
  t.equal(await scroll.loadOlder('a', 2, fetch), true)
  t.equal(await scroll.loadOlder('a', 2, fetch), false)
  t.equal(await scroll.loadOlder('a', 2, fetch), false, 'nothing is asked once none are left')
  t.same(asked, [5, 3])
  t.same(pages.map((p) => p.messages.map((m) => m.offset)), [[3, 4], [1, 2]])
})

t.test('a page from another epoch is stale; a new epoch starts the edge over, a recovered rejoin keeps it', async (t) => {
  const scroll = new Scrollback(new Emitter<ChatEvents>())
  scroll.onJoined(joined('e1', [10]))
  await t.rejects(scroll.loadOlder('a', 5, async () => page('e2', [1], false)), { code: 'stale' })
  t.equal(scroll.more('a'), true, 'the edge did not move')
  await scroll.loadOlder('a', 5, async () => page('e1', [5, 6, 7, 8, 9], true))
  scroll.onJoined({ ...joined('e1', [11]), recovered: true })
  const asked: number[] = []
  await scroll.loadOlder('a', 5, async ({ before }) => { asked.push(before); return page('e1', [], false) })
  t.same(asked, [5], 'a recovered rejoin keeps what was loaded')
  scroll.onJoined(joined('e2', []))
  t.equal(scroll.more('a'), false, 'an empty room in a new epoch has nothing older')
  scroll.forget('a')
  t.equal(scroll.more('a'), undefined)
})

t.test('over real sockets: loadOlder pages back through every message once, in order', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fastify-chat-client-scrollback-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  // The joined replay carries the latest 5; the file keeps them all.
  const { app, url } = await listen(t, { historySize: 5, maxHistoryPage: 7, store: sqliteStore({ path: join(dir, 'chat.db') }) })
  for (let i = 1; i <= 40; i++) await app.chat.broadcast('lobby', `m${i}`)
  const conn: ChatConnection = connect(`${url}/chat?room=lobby`, { WebSocket })
  t.teardown(() => conn.close())
  const seen: number[] = []
  conn.on('joined', (frame) => seen.push(...frame.history.map((m) => m.offset)))
  conn.on('history', (frame) => seen.unshift(...frame.messages.map((m) => m.offset)))
  await within(new Promise((resolve) => conn.on('joined', resolve)))
  let more = true
  for (let i = 0; i < 20 && more; i++) more = await conn.loadOlder('lobby', 7)
  t.equal(more, false)
  t.same(seen, Array.from({ length: 40 }, (_, i) => i + 1))

  await t.rejects(conn.history('elsewhere', { before: 5, limit: 5 }), { code: 'not_in_room' })
  await t.rejects(conn.history('lobby', { before: 5, limit: 8 }), { code: 'invalid_message' }, 'over maxHistoryPage')
  const direct = await conn.history('lobby', { before: 3, limit: 5 })
  t.same(direct.messages.map((m) => m.text), ['m1', 'm2'])
  conn.close()
  const closed: HistoryError = await conn.history('lobby', { before: 3, limit: 5 }).then(() => { throw new Error('resolved') }, (err) => err)
  t.equal(closed.code, 'not_open')
})
