import diagnostics from 'node:diagnostics_channel'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import type { Broker, BrokerNode, PublishResult } from '../../lib/broker/broker.js'
import { LocalBroker } from '../../lib/broker/local-broker.js'
import { LocalPresence } from '../../lib/broker/local-presence.js'
import type { PageRequest, PresencePage } from '../../lib/broker/presence.js'
import { Hub } from '../../lib/chat/hub.js'
import type { HubParts } from '../../lib/chat/hub.js'
import { PresenceTracker } from '../../lib/chat/presence-tracker.js'
import type { ChatMessage, JoinedFrame, ServerFrame } from '../../lib/protocol/wire.js'
import { Stats } from '../../lib/stats.js'
import type { HistoryPage, NewMessage } from '../../lib/stores/history-store.js'
import { MemoryStore } from '../../lib/stores/memory-store.js'
import { Connection } from '../../lib/transport/connection.js'
import { Connections } from '../../lib/transport/connections.js'
import { Client, within, wsPair } from '../helpers/chat.js'

/** A point a join stops at until the test lets it go on; `reached` settles when the join gets there. */
class Gate {
  reached: Promise<void>
  #arrive!: () => void
  #open!: () => void
  readonly #opened: Promise<void>

  constructor () {
    this.reached = new Promise((resolve) => { this.#arrive = resolve })
    this.#opened = new Promise((resolve) => { this.#open = resolve })
  }

  async pass (): Promise<void> {
    this.#arrive()
    await this.#opened
  }

  open (): void {
    this.#open()
  }
}

/**
 * The local broker, with what a remote one can do to a join: fail, take its
 * time, deliver a stored message late (as Redis pub/sub can), or lose the
 * history (a Redis restart).
 */
class TestBroker implements Broker {
  inner = new LocalBroker(new MemoryStore())
  node: BrokerNode | null = null
  // While set, stored messages wait here instead of being delivered.
  deferred: Array<[ChatMessage, string | null]> | null = null
  readonly subscribed: string[] = []
  readonly unsubscribed: string[] = []
  failSubscribe: Error | null = null
  failRecent: Error | null = null
  failUnsubscribe: Error | null = null
  recentGate: Gate | null = null
  duplicates = false

  async publish (message: NewMessage, exclude: string | null): Promise<PublishResult> {
    const result = await this.inner.publish(message, exclude)
    return this.duplicates ? { ...result, duplicate: true } : result
  }

  async subscribe (room: string): Promise<void> {
    this.subscribed.push(room)
    if (this.failSubscribe !== null) throw this.failSubscribe
  }

  async unsubscribe (room: string): Promise<void> {
    this.unsubscribed.push(room)
    if (this.failUnsubscribe !== null) throw this.failUnsubscribe
  }

  start (node: BrokerNode): void {
    this.node = node
    this.inner.start({
      deliver: (message, exclude) => {
        if (this.deferred !== null) this.deferred.push([message, exclude])
        else node.deliver(message, exclude)
      },
      reset: (room) => node.reset(room)
    })
  }

  /** Delivers what was deferred, and stops deferring. */
  deliverDeferred (): void {
    const deferred = this.deferred ?? []
    this.deferred = null
    for (const [message, exclude] of deferred) this.node?.deliver(message, exclude)
  }

  /** Loses every room's history: a new store, so a new epoch, numbered from 1 again. */
  lose (): void {
    this.inner.close()
    this.inner = new LocalBroker(new MemoryStore())
    if (this.node !== null) this.start(this.node)
  }

  async recent (room: string, limit: number): Promise<HistoryPage> {
    // The history as it is when the read starts, however long the read takes.
    const inner = this.inner
    await this.recentGate?.pass()
    if (this.failRecent !== null) throw this.failRecent
    return await inner.recent(room, limit)
  }

  async since (room: string, offset: number): Promise<HistoryPage | null> {
    return await this.inner.since(room, offset)
  }

  async entry (room: string, offset: number): Promise<ChatMessage | null> {
    return await this.inner.entry(room, offset)
  }
}

/** Local presence whose page (the last read of a join) can be held up, or fail; it records what it was asked. */
class TestPresence extends LocalPresence {
  listGate: Gate | null = null
  failPage: Error | null = null
  readonly requests: PageRequest[] = []

  override async page (room: string, request: PageRequest): Promise<PresencePage> {
    this.requests.push(request)
    await this.listGate?.pass()
    if (this.failPage !== null) throw this.failPage
    return await super.page(room, request)
  }
}

const quiet = { warn () {}, error () {}, info () {}, debug () {} } as unknown as FastifyBaseLogger

interface Setup {
  hub: Hub
  broker: TestBroker
  presence: TestPresence
  stats: Stats
  connections: Connections
  /** A socket of user `id` (named in capitals), added to the hub, with the client end reading its frames. */
  connect: (id: string) => Promise<Member>
}

interface Member {
  conn: Connection
  client: Client
  /** What was logged on its request, by level. */
  errors: unknown[]
  warnings: unknown[]
}

async function setup (t: Test, maxRoomsPerClient = 10, resetRetryMs = [1, 1], parts: Partial<HubParts> = {}): Promise<Setup> {
  const broker = new TestBroker()
  const presence = new TestPresence()
  const stats = new Stats()
  const connections = new Connections(stats)
  const tracker = new PresenceTracker(presence, 0, quiet)
  const hub = new Hub({ broker, presence: tracker, connections, stats, historySize: 3, maxRoomsPerClient, resetRetryMs, ...parts })
  broker.start(hub.node)
  presence.start(hub.node)
  t.teardown(async () => await hub.close(1001, 'test over'))
  const connect = async (id: string): Promise<Member> => {
    const { server, client } = await wsPair(t)
    const errors: unknown[] = []
    const warnings: unknown[] = []
    const log = { ...quiet, error: (obj: unknown) => { errors.push(obj) }, warn: (obj: unknown) => { warnings.push(obj) } }
    const ctx = { maxBufferedBytes: 1 << 20, behindBytes: 1 << 18, closeTimeout: 100, stats }
    const conn = new Connection(server, { log } as unknown as FastifyRequest, id, id.toUpperCase(), undefined, ctx, null)
    hub.add(conn)
    return { conn, client: new Client(client), errors, warnings }
  }
  return { hub, broker, presence, stats, connections, connect }
}

function message (text: string, room = 'r'): NewMessage {
  return { room, ts: 1, from: { id: 'sys', name: 'sys' }, text }
}

/** A frame in short: message texts, and the type of anything else (with its room or user). */
function brief (frame: ServerFrame): string {
  switch (frame.type) {
    case 'message': return frame.text
    case 'presence': return `${frame.event} ${frame.user.id}`
    case 'occupancy': return `occupancy ${frame.count}`
    case 'error': return `error ${frame.code}`
    case 'joined': case 'left': return `${frame.type} ${frame.room}`
    default: return frame.type
  }
}

/** Reads `member`'s frames up to a `left` frame for room `marker`, and returns, in brief, those before it. */
async function readUntil (member: Member, marker: string): Promise<string[]> {
  const out: string[] = []
  for (;;) {
    const frame = brief(await member.client.next())
    if (frame === marker) return out
    out.push(frame)
  }
}

/** What `member` got so far, for a socket in no room: a marker sent straight to it comes after everything. */
async function drain (member: Member): Promise<string[]> {
  member.conn.send({ type: 'left', room: 'marker' })
  return await readUntil(member, 'left marker')
}

let markers = 0

/**
 * What each member of `room` got so far: a marker message published to the
 * room is written after whatever the room has pending (presence included).
 */
async function drainRoom (hub: Hub, room: string, ...members: Member[]): Promise<string[][]> {
  const marker = `marker ${++markers}`
  await hub.publish(message(marker, room), null)
  return await Promise.all(members.map(async (member) => await readUntil(member, marker)))
}

t.test('join: joined with the latest history and who is there; the others are told, the joiner is not', async (t) => {
  const { hub, broker, connect } = await setup(t)
  for (const text of ['m1', 'm2', 'm3', 'm4']) await hub.publish(message(text), null)
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  const joined = await alice.client.expect('joined')
  t.strictSame(joined.history.map((m) => m.text), ['m2', 'm3', 'm4'], 'historySize of them')
  t.strictSame([joined.recovered, joined.offset, joined.users, joined.count], [false, 4, [{ id: 'alice', name: 'ALICE' }], 1])
  t.strictSame(broker.subscribed, ['r'])

  const bob = await connect('bob')
  await hub.join(bob.conn, 'r', { epoch: joined.epoch, offset: 1 })
  const bobJoined = await bob.client.expect('joined')
  t.strictSame([bobJoined.recovered, bobJoined.history.map((m) => m.text)], [true, ['m2', 'm3', 'm4']], 'since is passed on for recovery')
  t.strictSame([bobJoined.users.map((u) => u.id), bobJoined.count], [['alice', 'bob'], 2])
  t.strictSame(broker.subscribed, ['r'], 'the room was subscribed once')
  const [aliceGot, bobGot] = await drainRoom(hub, 'r', alice, bob)
  t.strictSame(aliceGot, ['join bob'])
  t.strictSame(bobGot, [], 'nobody is told of their own arrival')
})

t.test('messages published while a join reads history reach the joiner once, right after joined', async (t) => {
  const { hub, broker, presence, connect } = await setup(t)
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  await hub.publish(message('before'), null)
  const bob = await connect('bob')

  broker.recentGate = new Gate()
  presence.listGate = new Gate()
  const joining = hub.join(bob.conn, 'r')
  await broker.recentGate.reached
  await hub.publish(message('while reading history'), null)
  broker.recentGate.open()
  await presence.listGate.reached
  await hub.publish(message('after the history was read'), null)
  presence.listGate.open()
  await joining

  const joined = await bob.client.expect('joined')
  t.strictSame(joined.history.map((m) => m.text), ['before', 'while reading history'], 'what was published before the read is in the history')
  const [bobGot, aliceGot] = await drainRoom(hub, 'r', bob, alice)
  t.strictSame(bobGot, ['after the history was read'], 'what came after it follows joined, once')
  t.strictSame(aliceGot, ['joined r', 'before', 'join bob', 'while reading history', 'after the history was read'], 'the others were not held up')
})

t.test('a join the broker cannot serve is answered unavailable, and leaves nothing behind', async (t) => {
  const { hub, broker, connect } = await setup(t)
  const alice = await connect('alice')
  broker.failSubscribe = new Error('broker down')
  await hub.join(alice.conn, 'r')
  t.match(await alice.client.expect('error'), { code: 'unavailable', room: 'r' }, 'naming the room, for a client that asked for several')
  t.strictSame(await drain(alice), [])
  t.equal(alice.conn.inRoom('r'), false)
  t.equal(alice.conn.held('r'), undefined, 'nothing held for the room')
  t.equal(hub.rooms.get('r'), undefined, 'the room is forgotten')
  t.strictSame(broker.unsubscribed, ['r'])
  t.match(alice.errors, [{ err: { message: 'broker down' }, room: 'r' }], 'logged on the request')

  broker.failSubscribe = null
  await hub.join(alice.conn, 'r')
  t.strictSame(await drain(alice), ['joined r'], 'a later try can succeed')
})

t.test('a rejoin that fails keeps the socket in the room it was already in', async (t) => {
  const { hub, broker, connect } = await setup(t)
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  broker.failRecent = new Error('history down')
  await hub.join(alice.conn, 'r')
  t.strictSame(await drain(alice), ['joined r', 'error unavailable'])
  t.equal(alice.conn.inRoom('r'), true)
  t.equal(alice.conn.held('r'), undefined)
  broker.failRecent = null
  await hub.publish(message('still here'), null)
  t.strictSame(await drainRoom(hub, 'r', alice), [['still here']])
})

t.test('maxRoomsPerClient: a join past it is refused; joining a room again is not another room', async (t) => {
  const { hub, connect } = await setup(t, 2)
  const alice = await connect('alice')
  await hub.join(alice.conn, 'a')
  await hub.join(alice.conn, 'b')
  await hub.join(alice.conn, 'c')
  await hub.join(alice.conn, 'a')
  t.strictSame(await drainRoom(hub, 'a', alice), [['joined a', 'joined b', 'error too_many_rooms', 'joined a']])
  t.strictSame([...alice.conn.roomNames()], ['a', 'b'])
})

t.test('leave: what the room sent before it comes first; the others are told; the last one out unsubscribes', async (t) => {
  const { hub, broker, connect } = await setup(t)
  const alice = await connect('alice')
  const bob = await connect('bob')
  await hub.join(alice.conn, 'r')
  await hub.join(bob.conn, 'r')
  await hub.publish(message('sent before the leave'), null)
  t.equal(hub.leave(bob.conn, 'r'), true)
  t.equal(hub.leave(bob.conn, 'r'), false, 'not in it any more')
  t.strictSame(await drain(bob), ['joined r', 'sent before the leave', 'left r'], 'flushed before left')
  t.strictSame(await drainRoom(hub, 'r', alice), [['joined r', 'join bob', 'sent before the leave', 'leave bob']])
  t.strictSame(broker.unsubscribed, [])
  hub.leave(alice.conn, 'r')
  t.strictSame(broker.unsubscribed, ['r'])
  t.equal(hub.rooms.get('r'), undefined)
})

t.test('a user on two sockets arrives with the first and departs with the last', async (t) => {
  const { hub, connect } = await setup(t)
  const bob = await connect('bob')
  const tab1 = await connect('alice')
  const tab2 = await connect('alice')
  await hub.join(bob.conn, 'r')
  await hub.join(tab1.conn, 'r')
  await hub.join(tab2.conn, 'r')
  hub.leave(tab1.conn, 'r')
  t.strictSame(await drainRoom(hub, 'r', bob), [['joined r', 'join alice']], 'one join, and no leave while a tab is still in')
  hub.remove(tab2.conn)
  t.strictSame(await drainRoom(hub, 'r', bob), [['leave alice']])
})

t.test('a failed unsubscribe is logged on the request of the socket that left, not thrown', async (t) => {
  const { hub, broker, connect } = await setup(t)
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  broker.failUnsubscribe = new Error('broker down')
  t.doesNotThrow(() => hub.leave(alice.conn, 'r'))
  t.strictSame(await drain(alice), ['joined r', 'left r'])
  t.match(alice.warnings, [{ err: { message: 'broker down' } }])
})

t.test('remove takes a closed socket out of every room, once', async (t) => {
  const { hub, broker, connections, connect } = await setup(t)
  const alice = await connect('alice')
  const bob = await connect('bob')
  await hub.join(alice.conn, 'r')
  await hub.join(alice.conn, 's')
  await hub.join(bob.conn, 'r')
  t.equal(connections.size, 2)
  hub.remove(alice.conn)
  t.equal(connections.size, 1)
  t.strictSame([...alice.conn.roomNames()], [])
  t.strictSame(broker.unsubscribed, ['s'], 'r still has bob')
  t.strictSame(hub.rooms.names(), ['r'])
  hub.remove(alice.conn)
  t.strictSame(broker.unsubscribed, ['s'], 'removing twice does nothing')
  t.strictSame(await drainRoom(hub, 'r', bob), [['joined r', 'leave alice']])
})

t.test('rename: the socket is told, and the others see the new name', async (t) => {
  const { hub, connect } = await setup(t)
  const alice = await connect('alice')
  const bob = await connect('bob')
  await hub.join(alice.conn, 'r')
  await hub.join(bob.conn, 'r')
  await drainRoom(hub, 'r', alice, bob)
  const renamed = bob.client.next()
  hub.rename(alice.conn, 'Ally')
  t.strictSame(await alice.client.next(), { type: 'renamed', name: 'Ally', previous: 'ALICE' })
  t.strictSame(await renamed, { type: 'presence', room: 'r', event: 'rename', user: { id: 'alice', name: 'Ally' }, previous: 'ALICE', count: 2 })
  t.equal(alice.conn.view.name, 'Ally')
})

t.test('publish reports each new message on the diagnostics channel, and not a duplicate', async (t) => {
  const { hub, broker } = await setup(t)
  const seen: unknown[] = []
  const onMessage = (event: unknown): void => { seen.push(event) }
  diagnostics.subscribe('fastify-chat:message', onMessage)
  t.teardown(() => diagnostics.unsubscribe('fastify-chat:message', onMessage))
  const stored = await hub.publish(message('hi'), null)
  t.strictSame(seen, [{ room: 'r', offset: 1, from: { id: 'sys', name: 'sys' } }])
  t.equal(stored.duplicate, false)
  broker.duplicates = true
  await hub.publish(message('again'), null)
  t.equal(seen.length, 1)
})

t.test('shed counts a refused message; nothing is congested while idle', async (t) => {
  const { hub, stats, connect } = await setup(t)
  const alice = await connect('alice')
  t.equal(hub.congested, false)
  hub.shed(alice.conn)
  t.equal(stats.drops.overloaded, 1)
})

t.test('close: what was sent goes out first, then every socket is closed; the hub then refuses and ignores', async (t) => {
  const { hub, connect } = await setup(t)
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  await hub.publish(message('last words'), null)
  const closing = hub.close(1001, 'server shutting down')
  t.equal(hub.closed, true)
  await within(closing, 3000, 'the close')
  t.strictSame([brief(await alice.client.next()), brief(await alice.client.next())], ['joined r', 'last words'])
  t.strictSame(await alice.client.closed, { code: 1001, reason: 'server shutting down' })
  await t.rejects(hub.publish(message('too late'), null), { code: 'FST_CHAT_CLOSED' })
})

t.test('a live message at or below what a joined replayed is not sent again, even when it arrives after the joined', async (t) => {
  const { hub, broker, connect } = await setup(t)
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  await alice.client.expect('joined')
  // Stored, but not yet delivered here: with Redis, a history read can see a message before pub/sub brings it.
  broker.deferred = []
  await hub.publish(message('m1'), null)
  await hub.publish(message('m2'), null)
  const bob = await connect('bob')
  await hub.join(bob.conn, 'r')
  const joined = await bob.client.expect('joined')
  t.strictSame([joined.offset, joined.history.map((m) => m.text)], [2, ['m1', 'm2']])
  broker.deliverDeferred()
  t.strictSame(await drainRoom(hub, 'r', alice, bob), [['join bob', 'm1', 'm2'], []], 'bob gets neither again; alice gets both')
  t.equal(hub.rooms.get('r')?.floors, null, 'nothing is checked once the room is past the joined')
})

/** The next frame of `member`, which must be a `joined` of room r. */
/** A socket of each of `ids`, joined to room `r` one after the other. */
async function joinAll (hub: Hub, connect: Setup['connect'], ids: string[]): Promise<Member[]> {
  const members: Member[] = []
  for (const id of ids) {
    const member = await connect(id)
    await hub.join(member.conn, 'r')
    members.push(member)
  }
  return members
}

async function joinedOf (member: Member): Promise<JoinedFrame> {
  const frame = await member.client.expect('joined')
  if (frame.room !== 'r') throw new Error(`a joined of ${frame.room}`)
  return frame
}

t.test('reset: each member gets a fresh joined of the new epoch and no presence event; live messages go on from it, once', async (t) => {
  const { hub, broker, connect } = await setup(t)
  const alice = await connect('alice')
  const bob = await connect('bob')
  await hub.join(alice.conn, 'r')
  await hub.join(bob.conn, 'r')
  const [before] = await Promise.all([joinedOf(alice), joinedOf(bob)])
  for (const text of ['m1', 'm2', 'm3']) await hub.publish(message(text), null)
  t.strictSame(await drainRoom(hub, 'r', alice, bob), [['join bob', 'm1', 'm2', 'm3'], ['m1', 'm2', 'm3']])

  broker.lose()
  broker.recentGate = new Gate()
  hub.node.reset('r')
  await broker.recentGate.reached
  // Of the new epoch, published while the reset reads the history: held, and in the history.
  await hub.publish(message('n1'), null)
  broker.recentGate.open()
  for (const member of [alice, bob]) {
    const joined = await joinedOf(member)
    t.not(joined.epoch, before.epoch, 'a new epoch')
    t.strictSame([joined.offset, joined.recovered, joined.history.map((m) => m.text)], [1, false, ['n1']])
    t.strictSame([joined.users.map((u) => u.id), joined.count], [['alice', 'bob'], 2], 'nobody came or went')
  }
  await hub.publish(message('n2'), null)
  t.strictSame(await drainRoom(hub, 'r', alice, bob), [['n2'], ['n2']], 'n1 once, no presence event')
})

t.test('reset while a join is replaying: the joiner gets one joined, the reset\'s', async (t) => {
  const { hub, broker, connect } = await setup(t)
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  await joinedOf(alice)
  await hub.publish(message('old'), null)
  const bob = await connect('bob')
  broker.recentGate = new Gate()
  const joining = hub.join(bob.conn, 'r')
  await broker.recentGate.reached
  broker.lose()
  hub.node.reset('r')
  broker.recentGate.open()
  await joining
  const joined = await joinedOf(bob)
  t.strictSame([joined.offset, joined.history], [0, []], 'of the new epoch, not the old history the join had read')
  await hub.publish(message('new'), null)
  t.strictSame(await drainRoom(hub, 'r', bob), [['new']], 'and no second joined')
  const aliceGot = await drainRoom(hub, 'r', alice)
  t.equal(aliceGot[0].filter((frame) => frame === 'joined r').length, 1, `alice got one reset: ${aliceGot[0].join(', ')}`)
})

t.test('reset: a failed read is tried again, and the members get their joined once it succeeds', async (t) => {
  const { hub, broker, connect } = await setup(t, 10, [1, 1])
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  await joinedOf(alice)
  const first = new Gate()
  broker.recentGate = first
  broker.failRecent = new Error('history down')
  hub.node.reset('r')
  await first.reached
  const second = new Gate()
  broker.recentGate = second
  first.open()
  await within(second.reached, 3000, 'the retry')
  broker.failRecent = null
  second.open()
  const joined = await joinedOf(alice)
  t.equal(joined.recovered, false)
  t.match(alice.warnings, [{ err: { message: 'history down' }, room: 'r' }], 'the failure is logged')
  t.strictSame(alice.errors, [])
})

t.test('reset: when every retry fails, the members are closed with 1013 so they resume', async (t) => {
  const { hub, broker, connect } = await setup(t, 10, [1, 1])
  const alice = await connect('alice')
  const bob = await connect('bob')
  await hub.join(alice.conn, 'r')
  await hub.join(bob.conn, 'r')
  broker.failRecent = new Error('history down')
  hub.node.reset('r')
  for (const member of [alice, bob]) {
    const { code, reason } = await within(member.client.closed, 3000, 'the close')
    t.equal(code, 1013)
    t.match(reason, /since/, 'the reason tells the client how to catch up')
  }
  t.equal(alice.warnings.length + bob.warnings.length, 2, 'one warning per retry')
  t.match([...alice.errors, ...bob.errors], [{ err: { message: 'history down' }, room: 'r' }], 'and one error when it gives up')
})

t.test('reset of a room without members here, or after close, does nothing', async (t) => {
  const { hub, broker, connect } = await setup(t)
  t.doesNotThrow(() => hub.node.reset('nobody-here'))
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  await hub.close(1001, 'server shutting down')
  broker.failRecent = new Error('not read')
  hub.node.reset('r')
  t.equal(alice.conn.held('r'), undefined, 'nothing held')
})

t.test('joined lists at most presenceListMax users, and counts them all', async (t) => {
  const { hub, presence, connect } = await setup(t, 10, [1, 1], { presenceListMax: 2 })
  const members = await joinAll(hub, connect, ['alice', 'bob', 'carol'])
  const joined = await Promise.all(members.map(joinedOf))
  t.strictSame(joined.map((frame) => [frame.users.map((u) => u.id), frame.count]), [
    [['alice'], 1], [['alice', 'bob'], 2], [['alice', 'bob'], 3]
  ])
  t.ok(presence.requests.every((request) => request.limit === 2 && request.after === undefined), 'one page of presenceListMax')
  hub.node.reset('r')
  for (const member of members) t.match(await joinedOf(member), { users: [{ id: 'alice' }, { id: 'bob' }], count: 3 }, 'a reset lists the same page')
})

t.test('presenceListMax 0: joined lists nobody, but counts them', async (t) => {
  const { hub, connect } = await setup(t, 10, [1, 1], { presenceListMax: 0 })
  const alice = await connect('alice')
  await hub.join(alice.conn, 'r')
  t.match(await joinedOf(alice), { users: [], count: 1 })
  await hub.members(alice.conn, { type: 'members', room: 'r' })
  t.match(await alice.client.expect('members'), { users: [{ id: 'alice' }], count: 1 }, 'a members page holds at least one')
})

t.test('members: a page of the room after the cursor, with next and cid', async (t) => {
  const { hub, presence, connect } = await setup(t, 10, [1, 1], { presenceListMax: 2 })
  const members = await joinAll(hub, connect, ['alice', 'bob', 'carol'])
  const [alice] = members
  await drainRoom(hub, 'r', alice)
  await hub.members(alice.conn, { type: 'members', room: 'r', cid: 'm1' })
  const first = await alice.client.expect('members')
  t.match(first, { type: 'members', room: 'r', users: [{ id: 'alice', name: 'ALICE' }, { id: 'bob', name: 'BOB' }], count: 3, cid: 'm1' })
  t.type(first.next, 'string')
  t.equal(presence.requests.at(-1)?.limit, 2, 'presenceListMax users by default')
  await hub.members(alice.conn, { type: 'members', room: 'r', after: first.next, limit: 5 })
  t.strictSame(await alice.client.expect('members'), { type: 'members', room: 'r', users: [{ id: 'carol', name: 'CAROL' }], count: 3 }, 'the last page has no next')
})

t.test('members: only for a member of the room; a failed read is unavailable, with room and cid', async (t) => {
  const { hub, presence, connect } = await setup(t)
  const alice = await connect('alice')
  await hub.members(alice.conn, { type: 'members', room: 'r', cid: 'x' })
  t.match(await alice.client.expect('error'), { code: 'not_in_room', room: 'r', cid: 'x' })
  await hub.join(alice.conn, 'r')
  await joinedOf(alice)
  presence.failPage = new Error('presence down')
  await hub.members(alice.conn, { type: 'members', room: 'r', cid: 'y' })
  t.match(await alice.client.expect('error'), { code: 'unavailable', room: 'r', cid: 'y' })
  t.match(alice.errors, [{ err: { message: 'presence down' }, room: 'r' }])
  t.equal(alice.conn.inRoom('r'), true, 'still in the room')
})

t.test('above presenceEventsMax members get occupancy counts instead of events, and events again below it', async (t) => {
  const { hub, connect } = await setup(t, 10, [1, 1], { presenceEventsMax: 2, occupancyIntervalMs: 60_000 })
  const members = await joinAll(hub, connect, ['alice', 'bob', 'carol', 'dave'])
  const [alice, bob, carol, dave] = members
  await Promise.all(members.map(joinedOf))
  t.strictSame(await drainRoom(hub, 'r', alice, bob, carol), [
    ['join bob', 'occupancy 3'],
    ['occupancy 3'],
    ['occupancy 3']
  ], 'the third user is counted, not announced; the fourth waits for the interval')
  hub.leave(dave.conn, 'r')
  t.strictSame(await drainRoom(hub, 'r', alice, bob), [[], []], 'a change back within the interval: nothing to send')
  hub.leave(carol.conn, 'r')
  t.strictSame(await drainRoom(hub, 'r', alice, bob), [['occupancy 2', 'leave carol'], ['occupancy 2', 'leave carol']],
    'at the limit again: the count they lack, then the events are back')
  hub.rename(bob.conn, 'Robert')
  t.strictSame(await drainRoom(hub, 'r', alice), [['rename bob']])
})

t.test('crossing back below the limit sends the count clients lack before the events resume; emptying the room stops its timer', async (t) => {
  const { hub, connect } = await setup(t, 10, [1, 1], { presenceEventsMax: 1, occupancyIntervalMs: 60_000 })
  const alice = await connect('alice')
  const bob = await connect('bob')
  const carol = await connect('carol')
  for (const member of [alice, bob, carol]) await hub.join(member.conn, 'r')
  t.strictSame(await drainRoom(hub, 'r', alice), [['joined r', 'occupancy 2']])
  hub.leave(carol.conn, 'r')
  hub.leave(bob.conn, 'r')
  t.strictSame(await drainRoom(hub, 'r', alice), [['occupancy 1', 'leave bob']], 'the count first, then the event that crossed back')
  const dave = await connect('dave')
  await hub.join(dave.conn, 'r')
  hub.leave(alice.conn, 'r')
  hub.leave(dave.conn, 'r')
  t.equal(hub.rooms.get('r'), undefined, 'the room is gone here, and its pending count with it')
})
