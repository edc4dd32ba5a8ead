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
import { Client, within, wsPair } from '../helpers/chat.js'

const HISTORY = 2

function context (): ConnectionContext {
  return { maxBufferedBytes: 1 << 20, behindBytes: 1 << 18, closeTimeout: 100, stats: new Stats() }
}

/** A connection whose socket is never touched: enough for holding, which is bookkeeping. */
function detached (id = 'alice'): Connection {
  return new Connection({ extensions: '' } as WebSocket, {} as FastifyRequest, id, id, undefined, context(), null)
}

/** A connection on a real socket, with the client end reading its frames. */
async function connected (t: Test, id = 'alice'): Promise<{ conn: Connection, client: Client }> {
  const { server, client } = await wsPair(t)
  return { conn: new Connection(server, {} as FastifyRequest, id, id, undefined, context(), null), client: new Client(client) }
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
  replay.begin(conn, 'r')
  replay.begin(conn, 'other')
  t.strictSame(conn.held('r'), [])
  replay.abandon(conn, 'r')
  t.equal(conn.held('r'), undefined, 'a failed join holds nothing')
  t.strictSame(conn.held('other'), [], 'other rooms keep holding')
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
  replay.begin(conn, 'r')
  const held = conn.held('r') as Array<ChatMessage | string>
  replay.hold(conn, held, batch)
  t.strictSame(held, [m1, '{"presence":"bob"}', m3], 'not its own message with echo off, nor its own presence')
  t.equal(held[0], m1, 'the stored message itself, encoded again only if it is sent')
})

t.test(`past ${MAX_HELD_PER_ROOM} held entries the socket is closed with 1013`, async (t) => {
  const { replay } = await withHistory(0)
  const { conn, client } = await connected(t)
  replay.begin(conn, 'r')
  const held = conn.held('r') as Array<ChatMessage | string>
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
  replay.begin(conn, 'r')
  const held = conn.held('r') as Array<ChatMessage | string>
  const presence = JSON.stringify({ type: 'presence', room: 'r', event: 'join', user: { id: 'carol', name: 'carol' } })
  held.push(message(4), message(5), presence, message(6), message(7))
  const page = { epoch: 'e1', offset: 5, messages: [message(4), message(5)] }
  const users = [{ id: 'alice', name: 'alice' }, { id: 'bob', name: 'bob' }]
  replay.finish(conn, 'r', { page, recovered: true }, users)
  conn.send({ type: 'left', room: 'marker' })

  const frames = await framesBefore(client, 'marker')
  t.strictSame(frames[0], { type: 'joined', room: 'r', epoch: 'e1', offset: 5, recovered: true, history: page.messages, users })
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
  replay.begin(conn, 'r')
  replay.abandon(conn, 'r')
  replay.finish(conn, 'r', result, [])

  replay.begin(conn, 'gone')
  conn.held('gone')?.push(message(1, 'gone'))
  replay.finish(conn, 'gone', result, [])
  t.equal(conn.held('gone'), undefined, 'it let go of the room all the same')

  conn.send({ type: 'left', room: 'marker' })
  t.strictSame(await framesBefore(client, 'marker'), [], 'neither a joined frame nor the held message')
  t.equal(stats.deliveriesOut, 0)
})
