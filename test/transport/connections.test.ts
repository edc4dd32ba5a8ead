import { once } from 'node:events'
import type { FastifyRequest } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import type WebSocket from 'ws'
import { Stats } from '../../lib/stats.js'
import { Connection } from '../../lib/transport/connection.js'
import { Connections } from '../../lib/transport/connections.js'
import { within, wsPair } from '../helpers/chat.js'

const CLOSE_TIMEOUT = 50

interface Peer {
  conn: Connection
  server: WebSocket
  client: WebSocket
}

/** A connection on a real socket; its pong sets `alive`, as the gateway wires it. */
async function peer (t: Test, stats: Stats, client: WebSocket.ClientOptions = {}, user = 'u'): Promise<Peer> {
  const pair = await wsPair(t, {}, client)
  const ctx = { maxBufferedBytes: 1 << 20, behindBytes: 1 << 18, closeTimeout: CLOSE_TIMEOUT, stats }
  const conn = new Connection(pair.server, { ip: '127.0.0.1' } as FastifyRequest, user, user, undefined, ctx, null)
  pair.server.on('pong', () => { conn.alive = true })
  return { conn, ...pair }
}

t.test('counts the open sockets; delete tells whether it was open', async (t) => {
  const stats = new Stats()
  const connections = new Connections(stats)
  const [a, b] = [await peer(t, stats), await peer(t, stats)]
  t.equal(connections.size, 0)
  connections.add(a.conn)
  connections.add(b.conn)
  connections.add(b.conn)
  t.equal(connections.size, 2)
  t.equal(connections.delete(a.conn), true)
  t.equal(connections.delete(a.conn), false, 'not twice')
  t.equal(connections.size, 1)
})

/** The socket ids of `conns`, sorted: ofUser promises no order. */
function keys (conns: Iterable<Connection>): string[] {
  return [...conns].map((conn) => conn.key).sort()
}

t.test('has and byKey find an open socket, and forget it once deleted', async (t) => {
  const stats = new Stats()
  const connections = new Connections(stats)
  const [a, b] = [await peer(t, stats, {}, 'ann'), await peer(t, stats, {}, 'ann')]
  t.not(a.conn.key, b.conn.key, 'two sockets of one user have distinct ids')
  t.equal(connections.has(a.conn), false, 'not before add')
  t.equal(connections.byKey(a.conn.key), undefined)

  connections.add(a.conn)
  connections.add(b.conn)
  t.equal(connections.has(a.conn), true)
  t.equal(connections.byKey(a.conn.key), a.conn)
  t.equal(connections.byKey(b.conn.key), b.conn)
  t.equal(connections.byKey('no-such-client'), undefined)
  t.equal(connections.byKey('ann'), undefined, 'a user id is not a socket id')

  connections.delete(a.conn)
  t.equal(connections.has(a.conn), false)
  t.equal(connections.byKey(a.conn.key), undefined)
  t.equal(connections.byKey(b.conn.key), b.conn, 'the other socket of the user stays')
})

t.test('ofUser: a user with 1, 2, then 3 sockets, and deletes back down to none', async (t) => {
  const stats = new Stats()
  const connections = new Connections(stats)
  const [a, b, c] = [await peer(t, stats, {}, 'ann'), await peer(t, stats, {}, 'ann'), await peer(t, stats, {}, 'ann')]
  const bob = await peer(t, stats, {}, 'bob')
  connections.add(bob.conn)
  t.strictSame(connections.ofUser('ann'), [], 'none yet')

  connections.add(a.conn)
  t.strictSame(keys(connections.ofUser('ann')), keys([a.conn]))
  connections.add(b.conn)
  t.strictSame(keys(connections.ofUser('ann')), keys([a.conn, b.conn]))
  connections.add(c.conn)
  t.strictSame(keys(connections.ofUser('ann')), keys([a.conn, b.conn, c.conn]))
  t.strictSame(keys(connections.ofUser('bob')), keys([bob.conn]), 'another user is apart')
  t.equal(connections.size, 4)

  // The first one added goes first: the one left behind must be a socket still open.
  t.equal(connections.delete(a.conn), true)
  t.strictSame(keys(connections.ofUser('ann')), keys([b.conn, c.conn]))
  t.equal(connections.delete(b.conn), true)
  t.strictSame(keys(connections.ofUser('ann')), keys([c.conn]))
  t.equal(connections.delete(b.conn), false, 'not twice')
  t.strictSame(keys(connections.ofUser('ann')), keys([c.conn]), 'a second delete changes nothing')
  t.equal(connections.delete(c.conn), true)
  t.strictSame(connections.ofUser('ann'), [])
  t.strictSame(keys(connections.ofUser('bob')), keys([bob.conn]), 'bob untouched throughout')

  // Back up again after having had none.
  connections.add(b.conn)
  t.strictSame(keys(connections.ofUser('ann')), keys([b.conn]))
  t.equal(connections.size, 2)
})

t.test('ofUser: down from two by the later socket, and from three by the middle one', async (t) => {
  const stats = new Stats()
  const connections = new Connections(stats)
  const [a, b, c] = [await peer(t, stats, {}, 'ann'), await peer(t, stats, {}, 'ann'), await peer(t, stats, {}, 'ann')]
  connections.add(a.conn)
  connections.add(b.conn)
  connections.delete(b.conn)
  t.strictSame(keys(connections.ofUser('ann')), keys([a.conn]))
  connections.add(b.conn)
  connections.add(c.conn)
  connections.delete(b.conn)
  t.strictSame(keys(connections.ofUser('ann')), keys([a.conn, c.conn]))
  connections.delete(c.conn)
  t.strictSame(keys(connections.ofUser('ann')), keys([a.conn]))
  t.equal(connections.byKey(a.conn.key), a.conn)
})

t.test('ofUser returns a copy: changing it changes nothing inside', async (t) => {
  const stats = new Stats()
  const connections = new Connections(stats)
  const [a, b] = [await peer(t, stats, {}, 'ann'), await peer(t, stats, {}, 'ann')]
  connections.add(a.conn)
  connections.ofUser('ann').pop()
  t.strictSame(keys(connections.ofUser('ann')), keys([a.conn]), 'one socket')
  connections.add(b.conn)
  const sockets = connections.ofUser('ann')
  sockets.length = 0
  t.strictSame(keys(connections.ofUser('ann')), keys([a.conn, b.conn]), 'two sockets')
  // Deleting while walking a copy, as moderation does when it closes a user's sockets.
  for (const conn of connections.ofUser('ann')) connections.delete(conn)
  t.strictSame(connections.ofUser('ann'), [])
  t.equal(connections.size, 0)
})

t.test('heartbeat pings every socket, and terminates one that did not answer the previous ping', async (t) => {
  const stats = new Stats()
  const connections = new Connections(stats)
  const answering = await peer(t, stats)
  // A peer that reads but never answers pings: a stuck tab, or a proxy that swallows them.
  const silent = await peer(t, stats, { autoPong: false })
  for (const { conn } of [answering, silent]) connections.add(conn)

  const pinged = [once(answering.client, 'ping'), once(silent.client, 'ping')]
  const ponged = once(answering.server, 'pong')
  connections.heartbeat()
  await within(Promise.all(pinged), 3000, 'both pings')
  await within(ponged, 3000, 'the pong')
  t.equal(answering.conn.alive, true, 'the pong marked it alive')
  t.equal(silent.conn.alive, false)
  t.equal(stats.drops.dead_peer, 0)

  const pingedAgain = once(answering.client, 'ping')
  const terminated = once(silent.server, 'close')
  connections.heartbeat()
  const [code] = await within(terminated, 3000, 'the dead peer\'s close') as [number]
  t.equal(code, 1006, 'terminated, without a close handshake')
  t.equal(stats.drops.dead_peer, 1)
  await within(pingedAgain, 3000, 'the next ping')
  t.equal(answering.server.readyState, answering.server.OPEN, 'the live peer stays')
})

t.test('closeAll closes every socket with the code and reason, and resolves once they are closed', async (t) => {
  const stats = new Stats()
  const connections = new Connections(stats)
  const peers = [await peer(t, stats), await peer(t, stats)]
  // A peer that stopped reading never answers the close handshake: it is terminated after closeTimeout.
  const stuck = await peer(t, stats)
  stuck.client.pause()
  for (const { conn } of [...peers, stuck]) connections.add(conn)
  const seen = peers.map(({ client }) => once(client, 'close'))

  await within(connections.closeAll(1001, 'server shutting down'), 3000, 'closeAll')
  for (const { server } of [...peers, stuck]) t.equal(server.readyState, server.CLOSED)
  for (const closed of seen) {
    const [code, reason] = await within(closed, 3000, 'the client\'s close') as [number, Buffer]
    t.strictSame([code, reason.toString()], [1001, 'server shutting down'])
  }
  await t.resolves(new Connections(stats).closeAll(1001, 'none'), 'nothing to close')
})
