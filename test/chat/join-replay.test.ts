import type { FastifyRequest } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import type WebSocket from 'ws'
import { LocalBroker } from '../../lib/broker/local-broker.js'
import { Batch } from '../../lib/chat/batch.js'
import { JoinReplay, MAX_HELD_PER_ROOM } from '../../lib/chat/join-replay.js'
import type { Replay } from '../../lib/chat/join-replay.js'
import { encodeMessage } from '../../lib/protocol/codec.js'
import type { ChatMessage, ServerFrame } from '../../lib/protocol/wire.js'
import { Stats } from '../../lib/stats.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { Connection } from '../../lib/transport/connection.js'
import type { ConnectionContext } from '../../lib/transport/connection.js'
import { Client, listen, within, wsPair } from '../helpers/chat.js'

const HISTORY = 2
// An empty room's page of users.
const NOBODY = { users: [], count: 0 }
const NO_READS = { read: 0, unread: 0 }

function context (maxBufferedBytes = 1 << 20): ConnectionContext {
  return { maxBufferedBytes, behindBytes: 1 << 18, closeTimeout: 100, stats: new Stats() }
}

/** A connection whose socket is never touched: enough for holding, which is bookkeeping. */
function detached (id = 'alice'): Connection {
  return new Connection({ extensions: '' } as WebSocket, {} as FastifyRequest, id, id, undefined, context(), null)
}

/** A connection on a real socket, with the client end reading its frames. */
async function connected (t: Test, id = 'alice', maxBufferedBytes?: number): Promise<{ conn: Connection, client: Client }> {
  const { server, client } = await wsPair(t)
  return { conn: new Connection(server, {} as FastifyRequest, id, id, undefined, context(maxBufferedBytes), null), client: new Client(client) }
}

function message (offset: number, room = 'r'): ChatMessage {
  return { room, offset, ts: 0, from: { id: 'bob', name: 'bob' }, text: `m${offset}` }
}

/** A replay over a fresh local broker with `count` messages in room `r`, keeping `kept` of them. */
async function withHistory (count: number, kept = 3): Promise<{ replay: JoinReplay, broker: LocalBroker, stats: Stats }> {
  const broker = new LocalBroker(new MemoryStore({ size: kept }))
  for (let i = 1; i <= count; i++) await broker.publish({ room: 'r', ts: 0, from: { id: 'bob', name: 'bob' }, text: `m${i}` }, null)
  const stats = new Stats()
  return { replay: new JoinReplay(broker, HISTORY, stats), broker, stats }
}

/** Reads frames until `marker` (a `left` frame for that room), returning what came before it. */
async function framesBefore (client: Client, marker: string): Promise<ServerFrame[]> {
  const frames: ServerFrame[] = []
  for (;;) {
    const frame = await client.next()
    if (frame.type === 'left' && frame.room === marker) return frames
    frames.push(frame)
  }
}

t.test('begin holds a room back from the socket until abandon or finish lets go', async (t) => {
  const { replay } = await withHistory(0)
  const conn = detached()
  t.equal(conn.held('r'), undefined)
  const held = replay.begin(conn, 'r')
  replay.begin(conn, 'other')
  t.equal(conn.held('r'), held, 'what begin returns is what the socket holds')
  t.strictSame(held, [])
  replay.abandon(conn, 'r', held)
  t.equal(conn.held('r'), undefined, 'a failed join holds nothing')
  t.strictSame(conn.held('other'), [], 'other rooms keep holding')
})

t.test('a later begin supersedes an earlier one: abandoning or finishing the earlier does nothing', async (t) => {
  const { replay } = await withHistory(0)
  const { conn, client } = await connected(t)
  conn.addRoom('r')
  const first = replay.begin(conn, 'r')
  const second = replay.begin(conn, 'r')
  t.not(first, second)
  t.equal(replay.current(conn, 'r', first), false)
  t.equal(replay.current(conn, 'r', second), true)
  replay.abandon(conn, 'r', first)
  t.equal(conn.held('r'), second, 'the later hold goes on')

  const stale: Replay = { page: { epoch: 'old', offset: 9, messages: [] }, recovered: true }
  const fresh: Replay = { page: { epoch: 'new', offset: 1, messages: [message(1)] }, recovered: false }
  t.equal(replay.finish(conn, 'r', first, stale, NOBODY, NO_READS), false, 'the earlier read is not sent')
  t.equal(replay.finish(conn, 'r', second, fresh, NOBODY, NO_READS), true)
  conn.send({ type: 'left', room: 'marker' })
  const frames = await framesBefore(client, 'marker')
  t.strictSame(frames.map((f) => f.type === 'joined' ? f.epoch : f.type), ['new'], 'one joined: the later one')
})

t.test('hold keeps what the socket would have got: messages as stored, presence frames as encoded', async (t) => {
  const { replay } = await withHistory(0)
  const conn = detached('alice')
  const [m1, m2, m3] = [message(1), message(2), message(3)]
  const batch = new Batch()
  batch.add(encodeMessage(m1), m1, null, null)
  batch.add('{"presence":"bob"}', null, null, 'bob')
  batch.add(encodeMessage(m2), m2, conn.key, null)
  batch.add('{"presence":"alice"}', null, null, 'alice')
  batch.add(encodeMessage(m3), m3, 'someone else', null)
  batch.add('{"signal":"bob"}', null, 'bob-key', null, true)
  const held = replay.begin(conn, 'r')
  replay.hold(conn, held, batch)
  t.strictSame(held, [m1, '{"presence":"bob"}', m3], 'not its own message with echo off, nor its own presence, nor a signal (never replayed)')
  t.equal(held[0], m1, 'the stored message itself, encoded again only if it is sent')
})

t.test(`past ${MAX_HELD_PER_ROOM} held entries the socket is closed with 1013`, async (t) => {
  const { replay } = await withHistory(0)
  const { conn, client } = await connected(t)
  const held = replay.begin(conn, 'r')
  const batch = (from: number, count: number): Batch => {
    const b = new Batch()
    for (let i = from; i < from + count; i++) b.add(encodeMessage(message(i)), message(i), null, null)
    return b
  }
  replay.hold(conn, held, batch(1, MAX_HELD_PER_ROOM - 1))
  replay.hold(conn, held, batch(MAX_HELD_PER_ROOM, 1))
  t.equal(held.length, MAX_HELD_PER_ROOM, 'up to the cap it holds')
  t.equal(conn.closedByServer, false, 'and the socket stays open')

  replay.hold(conn, held, batch(MAX_HELD_PER_ROOM + 1, 2))
  t.equal(held.length, MAX_HELD_PER_ROOM, 'nothing past the cap')
  const { code, reason } = await within(client.closed, 3000, 'the close')
  t.equal(code, 1013)
  t.match(reason, /since/, 'the reason tells the client how to catch up')
})

t.test('read: everything after since when the epoch matches and it is all still kept', async (t) => {
  const { replay, broker } = await withHistory(5, 3)
  const { epoch } = await broker.recent('r', 0)
  const replayed = await replay.read('r', { epoch, offset: 2 })
  t.equal(replayed.recovered, true)
  t.strictSame(replayed.page.messages.map((m) => m.offset), [3, 4, 5], 'more than the history size: all that was missed')
  t.equal(replayed.page.epoch, epoch)
  t.equal(replayed.page.offset, 5)

  const upToDate = await replay.read('r', { epoch, offset: 5 })
  t.strictSame([upToDate.recovered, upToDate.page.messages], [true, []], 'up to date: nothing to replay, and nothing lost')
})

t.test('read: the latest history, not recovered, when since cannot be continued without a gap', async (t) => {
  const { replay, broker } = await withHistory(5, 3)
  const { epoch } = await broker.recent('r', 0)
  const latest = [4, 5]
  const cases: Array<[string, { epoch: string, offset: number } | undefined]> = [
    ['no since', undefined],
    ['another epoch (the history was lost)', { epoch: 'not-this-one', offset: 4 }],
    ['some of what was missed is no longer kept', { epoch, offset: 1 }],
    ['beyond the latest offset', { epoch, offset: 6 }]
  ]
  for (const [why, since] of cases) {
    const replayed = await replay.read('r', since)
    t.strictSame([replayed.recovered, replayed.page.messages.map((m) => m.offset)], [false, latest], why)
  }
})

t.test('finish: joined with the replay, then the held messages it did not have and every held presence frame, in order', async (t) => {
  const { replay, stats } = await withHistory(0)
  const { conn, client } = await connected(t)
  conn.addRoom('r')
  const held = replay.begin(conn, 'r')
  const presence = JSON.stringify({ type: 'presence', room: 'r', event: 'join', user: { id: 'carol', name: 'carol' } })
  held.push(message(4), message(5), presence, message(6), message(7))
  const page = { epoch: 'e1', offset: 5, messages: [message(4), message(5)] }
  const users = [{ id: 'alice', name: 'alice' }, { id: 'bob', name: 'bob' }]
  t.equal(replay.finish(conn, 'r', held, { page, recovered: true }, { users, count: 7 }, { read: 3, unread: 2 }), true)
  conn.send({ type: 'left', room: 'marker' })

  const frames = await framesBefore(client, 'marker')
  t.strictSame(frames[0], { type: 'joined', room: 'r', epoch: 'e1', offset: 5, recovered: true, history: page.messages, users, count: 7, read: 3, unread: 2 }, 'the page of users, the count of them all, and the read position')
  t.strictSame(frames.slice(1).map((f) => f.type === 'message' ? f.offset : f.type), ['presence', 6, 7], 'offsets 4 and 5 came in the replay')
  t.strictSame(frames[1], JSON.parse(presence), 'presence passed through as it was')
  t.strictSame(frames[2], { type: 'message', ...message(6) })
  t.equal(stats.deliveriesOut, 2, 'the held messages sent are counted')
  t.equal(conn.held('r'), undefined, 'no longer holding')
})

t.test('finish sends nothing when the socket stopped holding or left the room meanwhile', async (t) => {
  const { replay, stats } = await withHistory(0)
  const { conn, client } = await connected(t)
  const result: Replay = { page: { epoch: 'e1', offset: 0, messages: [] }, recovered: false }

  conn.addRoom('r')
  const abandoned = replay.begin(conn, 'r')
  replay.abandon(conn, 'r', abandoned)
  t.equal(replay.finish(conn, 'r', abandoned, result, NOBODY, NO_READS), false)

  const gone = replay.begin(conn, 'gone')
  gone.push(message(1, 'gone'))
  t.equal(replay.finish(conn, 'gone', gone, result, NOBODY, NO_READS), false)
  t.equal(conn.held('gone'), undefined, 'it let go of the room all the same')

  conn.send({ type: 'left', room: 'marker' })
  t.strictSame(await framesBefore(client, 'marker'), [], 'neither a joined frame nor the held message')
  t.equal(stats.deliveriesOut, 0)
})

t.test('finish: the joined frame takes at most half of what the socket may have waiting; cut, it is not recovered', async (t) => {
  const { replay } = await withHistory(0)
  const { conn, client } = await connected(t, 'alice', 64 * 1024)
  conn.addRoom('r')
  const big = (offset: number): ChatMessage => ({ ...message(offset), text: 'x'.repeat(10_000) })
  const page = { epoch: 'e1', offset: 10, messages: Array.from({ length: 10 }, (_, i) => big(i + 1)) }
  const held = replay.begin(conn, 'r')
  t.equal(replay.finish(conn, 'r', held, { page, recovered: true }, { users: [{ id: 'alice', name: 'alice' }], count: 1 }, NO_READS), true)
  const joined = await client.expect('joined')
  const bytes = Buffer.byteLength(JSON.stringify(joined))
  t.ok(bytes <= 32 * 1024, `${bytes} bytes, within half of maxBufferedBytes`)
  t.ok(bytes > 32 * 1024 - 10_100, 'and as many messages as fit')
  t.strictSame(joined.history.map((m) => m.offset), [8, 9, 10], 'the latest ones, oldest first')
  t.equal(joined.recovered, false, 'the client is told it has a gap')
  t.strictSame([joined.offset, joined.users], [10, [{ id: 'alice', name: 'alice' }]], 'the rest as it was')
})

t.test('100 messages of 2000 escaped control characters: the joined frame stays within half of maxBufferedBytes, and the socket stays open', async (t) => {
  const maxBufferedBytes = 1024 * 1024
  const { app, url } = await listen(t, { historySize: 100, maxMessageLength: 2000, maxBufferedBytes })
  const text = '\u0001'.repeat(2000)
  for (let i = 0; i < 100; i++) await app.chat.broadcast('big', text)
  const all = await app.chat.history('big', { limit: 100 })
  t.ok(Buffer.byteLength(JSON.stringify(all)) > maxBufferedBytes, 'the whole history is more than maxBufferedBytes')

  const client = await Client.connect(url, '/chat?room=big')
  await client.expect('welcome')
  const joined = await client.expect('joined')
  const bytes = Buffer.byteLength(JSON.stringify(joined))
  t.ok(bytes <= maxBufferedBytes / 2, `${bytes} bytes`)
  const offsets = joined.history.map((m) => m.offset)
  t.ok(offsets.length >= 30, `${offsets.length} messages replayed`)
  t.strictSame(offsets, Array.from({ length: offsets.length }, (_, i) => 101 - offsets.length + i), 'the latest ones, without a gap up to the room offset')
  t.strictSame([joined.offset, joined.recovered], [100, false])

  await app.chat.broadcast('big', 'after')
  const next = await client.expect('message')
  t.strictSame([next.offset, next.text], [101, 'after'], 'the socket is open and live messages follow')
})
