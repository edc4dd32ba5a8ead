// Moderation while one instance is cut off from Redis: the commands it
// missed live come from the control log once it is back, and they spare the
// sockets opened after they were sent.
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat, { redisAdapter } from '../../index.js'
import { Client, logLines, within } from '../helpers/chat.js'
import { adminClient, startRedis } from '../helpers/redis.js'
import { startProxy } from '../helpers/tcp-proxy.js'

async function node (t: Test, url: string, log = logLines()): Promise<{ app: FastifyInstance, url: string }> {
  const { stream } = log
  const app = Fastify({ logger: { level: 'warn', stream } })
  await app.register(fastifyChat, {
    presenceGraceMs: 0,
    defaultRoom: null,
    identify: (request) => {
      const { user } = request.query as { user?: string }
      return { id: user, name: user }
    },
    adapter: redisAdapter({ url, commandTimeoutMs: 500 })
  })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

async function connect (t: Test, url: string, user: string): Promise<Client> {
  const client = await Client.connect(url, `/chat?user=${user}`)
  t.teardown(() => client.ws.terminate())
  await client.expect('welcome')
  return client
}

t.test('a kick and a removal sent while B was cut off reach B once it is back, and spare sockets opened since', async (t) => {
  const redis = await startRedis(t)
  const proxy = await startProxy(t, redis.port)
  const a = await node(t, redis.url)
  const b = await node(t, proxy.url)
  const bob = await connect(t, b.url, 'bob')
  const carol = await connect(t, b.url, 'carol')
  carol.send({ type: 'join', room: 'dev' })
  await carol.expect('joined')

  const healed = proxy.cut(3000)
  t.equal(await a.app.chat.disconnect({ userId: 'bob' }, { reason: 'banned' }), 0, 'nothing of bob on A')
  t.equal(await a.app.chat.removeFromRoom('dev', 'carol', { reason: 'off topic' }), 0, 'nor of carol')
  // Opened on B after the kick was sent, while B is still cut off.
  const later = await connect(t, b.url, 'bob')
  t.equal(bob.ws.readyState, bob.ws.OPEN, 'B has not heard of the kick yet')
  await healed

  t.strictSame(await within(bob.closed, 15_000, 'the kick, from the control log'), { code: 4000, reason: 'banned' })
  t.strictSame(await within(carol.next(), 15_000, 'the removal'), { type: 'left', room: 'dev', reason: 'removed', message: 'off topic' })
  later.send({ type: 'name', name: 'still-here' })
  t.match(await later.expect('renamed'), { name: 'still-here' }, 'the socket opened after the kick was sent is spared')
  t.equal(b.app.chat.size, 2, 'carol and the later bob')

  t.equal(await a.app.chat.disconnect({ userId: 'bob' }, { reason: 'again' }), 0)
  t.strictSame(await within(later.closed, 3000, 'a live kick'), { code: 4000, reason: 'again' }, 'live commands reach B again, once')
  t.ok(proxy.refused > 0, 'B tried to reconnect during the cut')
})

t.test('when the log was trimmed past what B last saw, B says so, and runs what is left', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  const proxy = await startProxy(t, redis.port)
  const a = await node(t, redis.url)
  const log = logLines()
  const b = await node(t, proxy.url, log)
  const bob = await connect(t, b.url, 'bob')
  const dave = await connect(t, b.url, 'dave')
  // B has seen a command: it knows where in the log it stands.
  const erin = await connect(t, b.url, 'erin')
  await a.app.chat.disconnect({ userId: 'erin' })
  await within(erin.closed, 3000, 'a live kick')

  const healed = proxy.cut(2000)
  await a.app.chat.disconnect({ userId: 'dave' }, { reason: 'lost' })
  await admin.xtrim('fastify-chat:control-log', 'MAXLEN', 0)
  await a.app.chat.disconnect({ userId: 'bob' }, { reason: 'kept' })
  await healed

  t.strictSame(await within(bob.closed, 15_000, 'the kick still in the log'), { code: 4000, reason: 'kept' })
  t.ok(log.lines.some((line) => line.level === 40 && /no longer holds every command/.test(String(line.msg))), 'the gap is logged')
  dave.send({ type: 'name', name: 'dave-2' })
  t.match(await dave.expect('renamed'), { name: 'dave-2' }, 'the trimmed kick is lost, and said to be')
})
