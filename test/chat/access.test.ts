import type { FastifyRequest } from 'fastify'
import t from 'tap'
import type WebSocket from 'ws'
import { Access } from '../../lib/chat/access.js'
import type { AuthorizeRequest } from '../../lib/options.js'
import { Stats } from '../../lib/stats.js'
import { Connection } from '../../lib/transport/connection.js'

/** A connection whose request logs into `logged`. */
function connection (logged: unknown[][]): Connection {
  const log = { error: (...args: unknown[]) => logged.push(args) }
  const ctx = { maxBufferedBytes: 1024, behindBytes: 256, closeTimeout: 100, stats: new Stats() }
  return new Connection({ extensions: '' } as WebSocket, { log } as unknown as FastifyRequest, 'alice', 'Alice', { team: 'a' }, ctx, null)
}

t.test('without authorize everything but moderating is allowed, synchronously', async (t) => {
  const access = new Access(null)
  t.equal(access.allows(connection([]), 'join', 'lobby'), true)
  t.equal(access.allows(connection([]), 'publish', 'lobby'), true)
  t.equal(access.allows(connection([]), 'moderate', 'lobby'), false, 'only authors change their messages')
})

t.test('moderate is asked with a copy of the message', async (t) => {
  const asked: AuthorizeRequest[] = []
  const access = new Access((request) => {
    asked.push(request)
    return true
  })
  const message = { room: 'lobby', offset: 3, ts: 1, from: { id: 'bob', name: 'Bob' }, text: 'hi' }
  t.equal(access.allows(connection([]), 'moderate', 'lobby', undefined, message), true)
  t.match(asked[0], { action: 'moderate', room: 'lobby', client: { id: 'alice' }, message })
  t.not(asked[0]?.message, message, 'a copy: the app cannot change what is stored')
})

t.test('a synchronous answer stays synchronous; only true allows', async (t) => {
  const answers: unknown[] = [true, false, 1, 'yes', null, undefined, {}]
  for (const answer of answers) {
    const access = new Access(() => answer as boolean)
    t.equal(access.allows(connection([]), 'join', 'lobby'), answer === true, `${JSON.stringify(answer) ?? 'undefined'}`)
  }
})

t.test('it is asked with the action, the room, the read-only client and, for direct, the other user', async (t) => {
  const asked: AuthorizeRequest[] = []
  const access = new Access((request) => {
    asked.push(request)
    return true
  })
  const conn = connection([])
  access.allows(conn, 'join', 'lobby')
  access.allows(conn, 'direct', 'dm-x', 'bob')
  t.strictSame(asked.map(({ action, room, to }) => ({ action, room, to })), [
    { action: 'join', room: 'lobby', to: undefined },
    { action: 'direct', room: 'dm-x', to: 'bob' }
  ])
  t.notOk('to' in asked[0], 'no `to` key unless direct')
  t.equal(asked[0].client, conn.view)
  t.equal(asked[0].client.id, 'alice')
  t.equal(asked[0].client.clientId, conn.key)
  t.strictSame(asked[0].client.data, { team: 'a' })
})

t.test('a promise is awaited: true allows, anything else refuses', async (t) => {
  t.equal(await new Access(async () => true).allows(connection([]), 'publish', 'lobby'), true)
  t.equal(await new Access(async () => false).allows(connection([]), 'publish', 'lobby'), false)
  t.equal(await new Access(async () => 'true' as unknown as boolean).allows(connection([]), 'publish', 'lobby'), false)
})

t.test('a throw or a rejection refuses, and is logged with the action and room', async (t) => {
  const logged: unknown[][] = []
  const thrown = new Error('sync boom')
  const sync = new Access(() => { throw thrown })
  t.equal(sync.allows(connection(logged), 'join', 'vault'), false)
  const rejected = new Error('async boom')
  const async = new Access(async () => { throw rejected })
  t.equal(await async.allows(connection(logged), 'publish', 'vault'), false)
  t.equal(logged.length, 2)
  t.match(logged[0], [{ err: thrown, action: 'join', room: 'vault' }, /authorize threw/])
  t.match(logged[1], [{ err: rejected, action: 'publish', room: 'vault' }, /authorize threw/])
})
