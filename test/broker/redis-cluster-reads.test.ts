// Read positions on a Redis Cluster: the user's hash and the room's keys
// live in different slots, so each script touches one slot only.
import Fastify from 'fastify'
import t from 'tap'
import fastifyChat, { redisAdapter } from '../../index.js'
import { Client } from '../helpers/chat.js'
import { RedisAdapter } from '../../lib/broker/redis/redis-adapter.js'
import { brokerConformance, WINDOW } from '../helpers/broker-conformance.js'
import { startRedisCluster } from '../helpers/redis-cluster.js'

const cluster = await startRedisCluster(t)
let chats = 0
brokerConformance(t, 'RedisAdapter (cluster)', async (context) => {
  const adapter = new RedisAdapter({ cluster: cluster.nodes, prefix: `cluster-reads-${++chats}` })
  await adapter.start({ ...context, historySize: WINDOW })
  return { adapter, teardown: async () => await adapter.close() }
}, { dedupesCids: true, deliversSubscribedOnly: true })

t.test('a read on one server reaches the user\'s socket on the other, through the room\'s shard', async (t) => {
  const prefix = `cluster-reads-${++chats}`
  const identify = (request: { query: unknown }): { id: string, name: string } => {
    const { user } = request.query as { user: string }
    return { id: user, name: user }
  }
  const start = async (): Promise<string> => {
    const app = Fastify()
    await app.register(fastifyChat, { presenceGraceMs: 0, defaultRoom: null, identify, adapter: redisAdapter({ cluster: cluster.nodes, prefix }) })
    t.teardown(() => app.close())
    await app.listen({ port: 0, host: '127.0.0.1' })
    return `ws://127.0.0.1:${(app.server.address() as { port: number }).port}`
  }
  const [a, b] = [await start(), await start()]
  const socket = async (url: string, user: string): Promise<Client> => {
    const client = await Client.connect(url, `/chat?user=${user}&room=lobby`)
    t.teardown(() => client.ws.terminate())
    await client.expect('welcome')
    await client.expect('joined')
    return client
  }
  const bob = await socket(a, 'bob')
  const onA = await socket(a, 'alice')
  const onB = await socket(b, 'alice')
  bob.send({ type: 'message', room: 'lobby', text: 'hi' })
  const next = async (client: Client, type: string): Promise<Record<string, unknown>> => {
    for (let i = 0; i < 20; i++) {
      const frame = await client.next() as unknown as Record<string, unknown>
      if (frame.type === type) return frame
    }
    throw new Error(`no ${type} frame`)
  }
  await next(onA, 'message')
  await next(onB, 'message')
  onA.send({ type: 'read', room: 'lobby', offset: 1 })
  t.strictSame(await next(onB, 'read'), { type: 'read', room: 'lobby', offset: 1 })
})
