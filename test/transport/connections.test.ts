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
async function peer (t: Test, stats: Stats, client: WebSocket.ClientOptions = {}): Promise<Peer> {
  const pair = await wsPair(t, {}, client)
  const ctx = { maxBufferedBytes: 1 << 20, behindBytes: 1 << 18, closeTimeout: CLOSE_TIMEOUT, stats }
  const conn = new Connection(pair.server, { ip: '127.0.0.1' } as FastifyRequest, 'u', 'u', undefined, ctx, null)
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
