import diagnostics from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import t from 'tap'
import type { Batch } from '../../lib/chat/batch.js'
import { FLUSH_INTERVAL_MS, Fanout, MAX_BATCH_BYTES, PRESENCE_DELAY_MS } from '../../lib/chat/fanout.js'
import type { Holding } from '../../lib/chat/fanout.js'
import { Rooms } from '../../lib/chat/rooms.js'
import type { Room } from '../../lib/chat/rooms.js'
import type { ChatMessage } from '../../lib/protocol/wire.js'
import { Stats } from '../../lib/stats.js'
import { Connection, Delivery } from '../../lib/transport/connection.js'
import type { DeliveryResult } from '../../lib/transport/connection.js'
import { Client, wsPair } from '../helpers/chat.js'
import { withFakeClock } from '../helpers/fake-clock.js'

/** One write-out to a member: when, and what its socket would get (message texts, presence frames as queued). */
interface Write {
  at: number
  got: string[]
}

/**
 * A room member as fan-out sees it: it records each write-out, and answers
 * with `result` (WRITTEN, or BEHIND for a socket with a backlog, NOT_WRITTEN
 * for one that is closed or slow).
 */
class Member {
  readonly id: string
  readonly key: string
  result: DeliveryResult = Delivery.WRITTEN
  readonly writes: Write[] = []
  readonly #held = new Map<string, Array<ChatMessage | string>>()

  constructor (id: string, key = `${id}-key`) {
    this.id = id
    this.key = key
  }

  deliver (batch: Batch): DeliveryResult {
    const entries = batch.entriesFor(this)
    if (entries.length === 0 || this.result === Delivery.NOT_WRITTEN) return Delivery.NOT_WRITTEN
    this.writes.push({ at: performance.now(), got: entries.map((entry) => textOf(entry.text)) })
    return this.result
  }

  hold (room: string): void {
    this.#held.set(room, [])
  }

  held (room: string): Array<ChatMessage | string> | undefined {
    return this.#held.get(room)
  }

  /** Everything written to it, in order. */
  get received (): string[] {
    return this.writes.flatMap((write) => write.got)
  }
}

/** A message frame's text; a presence frame as it was queued. */
function textOf (frame: string): string {
  return frame.startsWith('{"type":"message"') ? (JSON.parse(frame) as ChatMessage).text : frame
}

let offset = 0
function message (text: string, room = 'r'): ChatMessage {
  return { room, offset: ++offset, ts: 0, from: { id: 'sender', name: 'sender' }, text }
}

/** What the Holding was handed. */
interface Held { member: unknown, held: Array<ChatMessage | string>, batch: Batch }

interface Setup {
  fanout: Fanout
  stats: Stats
  rooms: Rooms<Connection>
  holds: Held[]
  /** A room with these members (made through Rooms, as the hub does). */
  room: (name: string, ...members: Member[]) => Room<Connection>
}

function setup (): Setup {
  const stats = new Stats()
  const holds: Held[] = []
  const holding: Holding = { hold: (member, held, batch) => { holds.push({ member, held, batch }) } }
  const rooms = new Rooms<Connection>()
  const room = (name: string, ...members: Member[]): Room<Connection> => {
    for (const member of members) rooms.add(member as unknown as Connection, name, async () => {})
    return rooms.get(name) as Room<Connection>
  }
  return { fanout: new Fanout(stats, holding), stats, rooms, holds, room }
}

function members (n: number): Member[] {
  return Array.from({ length: n }, (_, i) => new Member(`user${i}`))
}

t.test('after a quiet spell, what one iteration queues goes out at its end, in one write per member', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, stats, room } = setup()
    const [alice, bob] = members(2)
    const r = room('r', alice, bob)
    fanout.message(r, message('one'), null)
    fanout.message(r, message('two'), null)
    t.strictSame(alice.writes, [], 'nothing is written while the iteration runs')
    clock.immediate()
    for (const member of [alice, bob]) t.strictSame(member.writes.map((write) => write.got), [['one', 'two']])
    t.equal(stats.deliveriesOut, 4, 'two messages to each of two members')
    t.equal(clock.now, 0, 'without waiting for any timer')
  })
})

t.test('under steady traffic a member gets at most one write per FLUSH_INTERVAL_MS, and every message in order', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, room } = setup()
    const [alice] = members(1)
    const r = room('r', alice)
    // Forty iterations a quarter of the interval apart, each handling one message.
    const step = FLUSH_INTERVAL_MS / 4
    const sent: string[] = []
    for (let i = 0; i < 40; i++) {
      clock.tick(step)
      sent.push(`m${i}`)
      fanout.message(r, message(`m${i}`), null)
      clock.immediate()
    }
    clock.tick(FLUSH_INTERVAL_MS * 2)
    clock.immediate()
    t.strictSame(alice.received, sent, 'all of them, once, in order')
    t.equal(alice.writes[0].got[0], 'm0', 'the first after the quiet spell went out in its own iteration')
    t.equal(alice.writes[0].at, step)
    const gaps = alice.writes.slice(1).map((write, i) => write.at - alice.writes[i].at)
    t.ok(gaps.every((gap) => gap >= FLUSH_INTERVAL_MS), `write-outs at least FLUSH_INTERVAL_MS apart: ${gaps.join(', ')}`)
    t.ok(alice.writes.length <= 40 / 4 + 1, `${alice.writes.length} write-outs for 40 messages over 10 intervals`)

    // A quiet spell again: the next message goes out in its own iteration.
    clock.tick(FLUSH_INTERVAL_MS * 5)
    const writes = alice.writes.length
    fanout.message(r, message('after the lull'), null)
    clock.immediate()
    t.equal(alice.writes.length, writes + 1)
    t.strictSame(alice.writes.at(-1)?.got, ['after the lull'])
  })
})

t.test('presence alone waits PRESENCE_DELAY_MS, and what arrives meanwhile goes out with it', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, room } = setup()
    const [alice] = members(1)
    const r = room('r', alice)
    fanout.presence(r, 'bob joined', 'bob')
    clock.immediate()
    clock.tick(PRESENCE_DELAY_MS - 1)
    t.strictSame(alice.writes, [], 'not at the end of the iteration, nor just before the delay')
    fanout.presence(r, 'carol joined', 'carol')
    clock.tick(1)
    t.strictSame(alice.writes.map((write) => write.got), [['bob joined', 'carol joined']], 'one write, at the delay after the first')
    t.equal(alice.writes[0].at, PRESENCE_DELAY_MS)
  })
})

t.test('a message takes the presence queued before it along, in order, and stops the presence timer', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, stats, room } = setup()
    const [alice] = members(1)
    const r = room('r', alice)
    fanout.presence(r, 'bob joined', 'bob')
    fanout.message(r, message('hello'), null)
    clock.immediate()
    t.strictSame(alice.received, ['bob joined', 'hello'])
    t.equal(stats.deliveriesOut, 1, 'presence is not counted as a delivery')
    clock.tick(PRESENCE_DELAY_MS * 2)
    clock.immediate()
    t.equal(alice.writes.length, 1, 'nothing more was written')
  })
})

t.test('who is skipped: the sender with echo off, and a user\'s own presence on every socket of theirs; a frame for everyone skips nobody', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, stats, room } = setup()
    const tab1 = new Member('alice', 'tab1-key')
    const tab2 = new Member('alice', 'tab2-key')
    const bob = new Member('bob')
    const r = room('r', tab1, tab2, bob)
    fanout.presence(r, 'alice renamed', 'alice')
    fanout.presence(r, 'occupancy, for everyone', null)
    fanout.message(r, message('from tab1'), 'tab1-key')
    fanout.message(r, message('to all'), null)
    clock.immediate()
    t.strictSame(tab1.received, ['occupancy, for everyone', 'to all'])
    t.strictSame(tab2.received, ['occupancy, for everyone', 'from tab1', 'to all'])
    t.strictSame(bob.received, ['alice renamed', 'occupancy, for everyone', 'from tab1', 'to all'])
    t.equal(stats.deliveriesOut, 5, 'messages counted per member that got them')
  })
})

t.test('a batch that reaches MAX_BATCH_BYTES is written at once', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, room } = setup()
    const [alice] = members(1)
    const r = room('r', alice)
    const big = 'x'.repeat(MAX_BATCH_BYTES * 0.4)
    fanout.message(r, message(`1${big}`), null)
    fanout.message(r, message(`2${big}`), null)
    t.equal(alice.writes.length, 0, 'under the limit it waits for the end of the iteration')
    fanout.message(r, message(`3${big}`), null)
    t.equal(alice.writes.length, 1, 'written by the call that filled it')
    t.equal(alice.writes[0].got.length, 3)
    fanout.message(r, message('small'), null)
    clock.immediate()
    t.strictSame(alice.writes.map((write) => write.got.map((text) => text.slice(0, 5))), [['1xxxx', '2xxxx', '3xxxx'], ['small']], 'what followed went out at the end of the iteration')

    fanout.presence(r, `{"huge presence":"${big}${big}${big}"}`, 'bob')
    t.equal(alice.writes.length, 3, 'presence that fills a batch does not wait either')
  })
})

t.test('a member whose join is replaying gets the batch through Holding instead of a write', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, stats, holds, room } = setup()
    const [alice, joining] = members(2)
    const r = room('r', alice, joining)
    joining.hold('r')
    fanout.message(r, message('live'), null)
    clock.immediate()
    t.strictSame(alice.received, ['live'])
    t.strictSame(joining.writes, [], 'no write to the joining member')
    t.equal(holds.length, 1)
    t.equal(holds[0].member, joining)
    t.equal(holds[0].held, joining.held('r'), 'with its own held list for the room')
    t.strictSame(holds[0].batch.entries.map((entry) => textOf(entry.text)), ['live'], 'and the batch')
    t.equal(stats.deliveriesOut, 1, 'held messages are counted when they are sent')
  })
})

t.test('a member that joined while a batch was pending gets only what was queued after', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, stats, room } = setup()
    const [alice, late] = members(2)
    const r = room('r', alice)
    fanout.message(r, message('before'), null)
    room('r', late)
    fanout.joined(r, late as unknown as Connection)
    fanout.message(r, message('after'), null)
    clock.immediate()
    t.strictSame(alice.received, ['before', 'after'])
    t.strictSame(late.received, ['after'])
    t.equal(stats.deliveriesOut, 3)
  })
})

t.test('flushMessages writes one room\'s batch now when it holds a message', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, room } = setup()
    const [alice, bob] = members(2)
    const a = room('a', alice)
    const b = room('b', bob)
    fanout.flushMessages(undefined)
    fanout.flushMessages(a)
    t.strictSame(alice.writes, [], 'nothing pending: nothing written')

    fanout.presence(a, 'presence only', 'carol')
    fanout.flushMessages(a)
    t.strictSame(alice.writes, [], 'presence alone keeps waiting for its delay')

    fanout.message(a, message('to a'), null)
    fanout.message(b, message('to b'), null)
    fanout.flushMessages(a)
    t.strictSame(alice.received, ['presence only', 'to a'], 'written now')
    t.strictSame(bob.writes, [], 'another room is left for the end of the iteration')
    clock.immediate()
    t.strictSame(bob.received, ['to b'])
    t.equal(alice.writes.length, 1, 'the flushed room is not written again')
  })
})

t.test('flush writes every pending batch now, presence included, and leaves nothing scheduled', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, room } = setup()
    const [alice, bob] = members(2)
    fanout.message(room('a', alice), message('to a'), null)
    fanout.presence(room('b', bob), 'presence in b', 'carol')
    fanout.flush()
    t.strictSame([alice.received, bob.received], [['to a'], ['presence in b']])
    clock.immediate()
    clock.tick(PRESENCE_DELAY_MS * 2)
    t.strictSame([alice.writes.length, bob.writes.length], [1, 1], 'no second write-out')
  })
})

t.test('congestion: more than an eighth of at least eight reached members behind', async (t) => {
  /** Writes one batch of `kind` to a fresh room of `total` members, `behind` of them behind and `closed` not written. */
  function writeOut (total: number, behind: number, closed = 0, kind: 'message' | 'presence' = 'message'): Fanout {
    const { fanout, room } = setup()
    const all = members(total)
    all.slice(0, behind).forEach((member) => { member.result = Delivery.BEHIND })
    all.slice(behind, behind + closed).forEach((member) => { member.result = Delivery.NOT_WRITTEN })
    const r = room('r', ...all)
    if (kind === 'message') fanout.message(r, message('m'), null)
    else fanout.presence(r, 'p', 'someone')
    fanout.flush()
    return fanout
  }

  await withFakeClock((clock) => {
    t.equal(writeOut(8, 0).congested, false, 'nobody behind')
    t.equal(writeOut(8, 1).congested, false, 'one in eight is a slow reader, not congestion')
    t.equal(writeOut(8, 2).congested, true, 'two in eight')
    t.equal(writeOut(16, 2).congested, false, 'exactly an eighth')
    t.equal(writeOut(16, 3).congested, true)
    t.equal(writeOut(7, 7).congested, false, 'a room of fewer than eight says nothing')
    t.equal(writeOut(9, 7, 2).congested, false, 'members not written to are not counted as reached')
    t.equal(writeOut(10, 2, 2).congested, true, 'two behind of eight reached')
    t.equal(writeOut(8, 8, 0, 'presence').congested, false, 'presence alone does not count')

    const fanout = writeOut(8, 8)
    clock.tick(PRESENCE_DELAY_MS / 2)
    t.equal(fanout.congested, true, 'it lasts a while after the write-out')
    clock.tick(1000)
    t.equal(fanout.congested, false, 'and clears when no write-out finds the room behind')
  })
})

t.test('signals ride in the room\'s batch: one write with its messages, never to the sender; dropped and counted under congestion', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, stats, holds, room } = setup()
    const [alice, bob, carol] = members(3)
    const r = room('r', alice, bob, carol)
    fanout.message(r, message('one'), null)
    fanout.signal(r, 'typing from alice', alice.key)
    fanout.message(r, message('two'), null)
    carol.hold('r')
    clock.immediate()
    t.strictSame(alice.writes.map((write) => write.got), [['one', 'two']], 'the sender gets the messages only')
    t.strictSame(bob.writes.map((write) => write.got), [['one', 'typing from alice', 'two']], 'one write, in order')
    t.equal(holds.length, 1, 'a replaying member is handed the batch (JoinReplay leaves its signals out)')
    t.equal(stats.deliveriesOut, 4, 'signals are not deliveries')

    fanout.signal(r, 'alone', alice.key)
    clock.immediate()
    t.equal(bob.writes.length, 1, 'a signal right after a write-out waits for the flush interval, as a message does')
    clock.tick(FLUSH_INTERVAL_MS)
    t.strictSame(bob.writes.at(-1)?.got, ['alone'])
  })

  await withFakeClock((clock) => {
    const { fanout, stats, room } = setup()
    const all = members(8)
    all.slice(0, 2).forEach((member) => { member.result = Delivery.BEHIND })
    const r = room('r', ...all)
    fanout.message(r, message('m'), null)
    fanout.flush()
    t.equal(fanout.congested, true)
    const events: Array<{ reason: string, ip?: string, room?: string }> = []
    const listen = (event: unknown): void => { events.push(event as typeof events[number]) }
    diagnostics.subscribe('fastify-chat:drop', listen)
    try {
      fanout.signal(r, 'typing', all[0].key)
    } finally {
      diagnostics.unsubscribe('fastify-chat:drop', listen)
    }
    t.equal(r.batch, null, 'not queued')
    t.equal(stats.drops.signal_shed, 1, 'counted once, not once per member')
    t.equal(events.length, 1, 'one drop event')
    t.equal(events[0]?.reason, 'signal_shed')
    t.equal(events[0]?.room, 'r')
    t.equal(events[0]?.ip, undefined, 'with no ip: the sender may be on another server')
    clock.tick(1000)
    clock.immediate()
    t.strictSame(all[1].writes.map((write) => write.got), [['m']], 'nothing was written for it')
  })
})

t.test('on real sockets: each member gets its batch as frames, in order', async (t) => {
  const ctx = { maxBufferedBytes: 1 << 20, behindBytes: 1 << 18, closeTimeout: 100, stats: new Stats() }
  const pairs = [await wsPair(t), await wsPair(t)]
  const [alice, bob] = pairs.map(({ server }, i) => new Connection(server, {} as FastifyRequest, ['alice', 'bob'][i], 'name', undefined, ctx, null))
  const [aliceClient, bobClient] = pairs.map(({ client }) => new Client(client))
  const stats = new Stats()
  const fanout = new Fanout(stats, { hold: () => t.fail('nobody is holding') })
  const rooms = new Rooms<Connection>()
  for (const conn of [alice, bob]) rooms.add(conn, 'r', async () => {})
  const r = rooms.get('r') as Room<Connection>

  const presence = JSON.stringify({ type: 'presence', room: 'r', event: 'join', user: { id: 'alice', name: 'alice' } })
  fanout.presence(r, presence, 'alice')
  fanout.message(r, message('echo off'), alice.key)
  fanout.message(r, message('to both'), null)

  const texts = async (client: Client, n: number): Promise<string[]> => {
    const out: string[] = []
    for (let i = 0; i < n; i++) {
      const frame = await client.next()
      out.push(frame.type === 'message' ? frame.text : frame.type)
    }
    return out
  }
  t.strictSame(await texts(bobClient, 3), ['presence', 'echo off', 'to both'])
  t.strictSame(await texts(aliceClient, 1), ['to both'])
  t.equal(stats.deliveriesOut, 3)
})

/** A stored message at `offset` of room r. */
function at (offset: number): ChatMessage {
  return { room: 'r', offset, ts: 0, from: { id: 'sender', name: 'sender' }, text: `m${offset}` }
}

t.test('floor: a member whose joined replayed past the room gets no message up to there, whenever it arrives', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, stats, room } = setup()
    const out = (): void => { clock.tick(PRESENCE_DELAY_MS); clock.immediate() }
    const [alice, joiner] = members(2)
    const r = room('r', alice, joiner)
    const conn = joiner as unknown as Connection
    fanout.message(r, at(1), null)
    out()
    fanout.floor(r, conn, 1)
    t.equal(r.floors, null, 'at or below what the room has queued: every later message is past it')

    // The joiner's history read saw 2 to 5 before they were delivered here.
    fanout.floor(r, conn, 5)
    t.strictSame([...(r.floors ?? [])], [[joiner, 5]])
    fanout.message(r, at(2), null)
    fanout.presence(r, 'presence', 'bob')
    fanout.message(r, at(3), null)
    out()
    t.strictSame(joiner.received, ['m1', 'presence'], 'the presence event, none of the messages')
    t.equal(r.floors?.get(conn), 5, 'kept while the room is below it')
    fanout.message(r, at(4), null)
    fanout.message(r, at(5), null)
    fanout.message(r, at(6), null)
    out()
    t.strictSame(joiner.received, ['m1', 'presence', 'm6'])
    t.strictSame(alice.received, ['m1', 'm2', 'presence', 'm3', 'm4', 'm5', 'm6'], 'the others get everything')
    t.equal(r.floors, null, 'dropped once the room went past it')
    t.equal(stats.deliveriesOut, 6 + 2, 'what was not written is not counted')

    fanout.message(r, at(7), null)
    out()
    t.strictSame(joiner.writes.at(-1)?.got, ['m7'])
  })
})

t.test('floor: one below the first message of a batch is let go without costing the batch', async (t) => {
  await withFakeClock((clock) => {
    const { fanout, room } = setup()
    const [alice, joiner] = members(2)
    const r = room('r', alice, joiner)
    fanout.floor(r, joiner as unknown as Connection, 3)
    fanout.message(r, at(4), null)
    let uniform: boolean | undefined
    alice.deliver = (batch) => { uniform = batch.uniform; return Delivery.WRITTEN }
    clock.immediate()
    t.equal(uniform, true, 'every member gets the shared frames')
    t.equal(r.floors, null)
  })
})

t.test('reset: what is pending goes out, and floors and offsets start over', async (t) => {
  await withFakeClock(() => {
    const { fanout, room } = setup()
    const [alice, joiner] = members(2)
    const r = room('r', alice, joiner)
    fanout.message(r, at(41), null)
    fanout.floor(r, joiner as unknown as Connection, 42)
    fanout.reset(r)
    t.strictSame(alice.received, ['m41'], 'written at once, before anything of the new epoch')
    t.strictSame([r.latest, r.floors], [0, null])
    fanout.floor(r, joiner as unknown as Connection, 2)
    t.equal(r.floors?.size, 1, 'a floor of the new epoch is above what it has queued')
  })
})
