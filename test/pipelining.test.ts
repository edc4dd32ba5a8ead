// One sender's messages through Redis are pipelined: they go out without
// waiting for each answer, keep the sender's order on every instance, and
// each echo or error reaches the frame it answers, by its cid.
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat, { redisAdapter } from '../index.js'
import type { FastifyChatOptions, RedisAdapterOptions, ServerFrame } from '../index.js'
import { Client, join, within } from './helpers/chat.js'
import { adminClient, startRedis } from './helpers/redis.js'
import { startProxy } from './helpers/tcp-proxy.js'

async function instance (t: Test, redisUrl: string, opts: FastifyChatOptions = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  await app.register(fastifyChat, {
    presenceGraceMs: 0,
    rateLimit: false,
    ...opts,
    adapter: redisAdapter({ url: redisUrl, presenceTtlMs: 600 } as RedisAdapterOptions)
  })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

type MessageFrame = Extract<ServerFrame, { type: 'message' }>
type ErrorFrame = Extract<ServerFrame, { type: 'error' }>

/** Reads `client`'s frames until `done` holds; bounded by frames read and by time. */
async function readUntil (client: Client, done: (messages: MessageFrame[], errors: ErrorFrame[]) => boolean, max: number, ms = 20_000): Promise<{ messages: MessageFrame[], errors: ErrorFrame[] }> {
  const messages: MessageFrame[] = []
  const errors: ErrorFrame[] = []
  await within((async () => {
    for (let frames = 0; frames < max && !done(messages, errors); frames++) {
      const frame = await client.next()
      if (frame.type === 'message') messages.push(frame)
      else if (frame.type === 'error') errors.push(frame)
    }
  })(), ms, 'the frames')
  if (!done(messages, errors)) throw new Error(`gave up after ${max} frames: ${messages.length} messages, ${errors.length} errors`)
  return { messages, errors }
}

const cids = (n: number): string[] => Array.from({ length: n }, (_, i) => `c${i}`)

t.test('500 messages sent back to back reach every member on both instances in the sender\'s order', async (t) => {
  const redis = await startRedis(t)
  const a = await instance(t, redis.url)
  const b = await instance(t, redis.url)
  const sender = await join(a.url, '?name=sender')
  const nearby = await join(a.url, '?name=nearby')
  const far = await join(b.url, '?name=far')
  const COUNT = 500
  for (let i = 0; i < COUNT; i++) sender.send({ type: 'message', text: `m${i}`, cid: `c${i}` })
  const seen = await Promise.all([sender, nearby, far].map(async (client) =>
    (await readUntil(client, (messages) => messages.length === COUNT, 5 * COUNT)).messages))
  for (const [i, messages] of seen.entries()) {
    t.same(messages.map((m) => m.cid), cids(COUNT), `${['sender', 'nearby', 'far'][i] as string}: every message once, in order`)
    t.same(messages.map((m) => m.offset), Array.from({ length: COUNT }, (_, n) => n + 1), 'offsets 1 to 500')
  }
})

t.test('with Redis 25 ms away each way, 200 messages take far less than 200 round trips', async (t) => {
  const redis = await startRedis(t)
  const DELAY = 25
  const proxy = await startProxy(t, redis.port, { delayMs: DELAY })
  const a = await instance(t, proxy.url)
  const sender = await join(a.url, '?name=sender')
  const COUNT = 200
  const started = Date.now()
  for (let i = 0; i < COUNT; i++) sender.send({ type: 'message', text: `m${i}`, cid: `c${i}` })
  const { messages } = await readUntil(sender, (messages) => messages.length === COUNT, 5 * COUNT, 30_000)
  const elapsed = Date.now() - started
  t.same(messages.map((m) => m.cid), cids(COUNT), 'every echo, in order')
  // One at a time, each message would wait for its script's answer: 200 × 50 ms = 10 s at the least.
  // Pipelined, 64 at a time, it is a few round trips; a third of serial leaves room for a loaded machine.
  const serial = COUNT * 2 * DELAY
  t.ok(elapsed < serial / 3, `took ${elapsed} ms, against ${serial} ms one round trip at a time`)
})

t.test('Redis refusing writes mid-stream: every cid gets its echo or an unavailable error naming it, never both, never neither', async (t) => {
  const redis = await startRedis(t)
  const admin = adminClient(t, redis)
  // The instance is a little away from Redis, so the stream is still going when the admin (next to Redis) acts.
  const proxy = await startProxy(t, redis.port, { delayMs: 5 })
  const a = await instance(t, proxy.url)
  const b = await instance(t, redis.url)
  const sender = await join(a.url, '?name=sender')
  const far = await join(b.url, '?name=far')
  t.teardown(() => admin.config('SET', 'maxmemory', '0'))
  const COUNT = 500
  for (let i = 0; i < COUNT; i++) sender.send({ type: 'message', text: `m${i}`, cid: `c${i}` })

  // After the 50th echo, Redis refuses every write (OOM) until the first refusal reaches the sender.
  const outcome = await readUntil(sender, (messages, errors) => {
    if (messages.length === 50 && errors.length === 0) admin.config('SET', 'maxmemory', '1').catch(() => {})
    if (errors.length === 1 && messages.length >= 50) admin.config('SET', 'maxmemory', '0').catch(() => {})
    return messages.length + errors.length === COUNT
  }, 5 * COUNT)
  const echoed = outcome.messages.map((m) => m.cid)
  const failed = outcome.errors.map((e) => e.cid)
  t.ok(failed.length > 0, `some were refused (${failed.length})`)
  t.ok(echoed.length >= 50, `some went out (${echoed.length})`)
  t.ok(outcome.errors.every((e) => e.code === 'unavailable'), 'refusals are unavailable')
  t.same([...echoed, ...failed].sort(), cids(COUNT).sort(), 'each cid answered exactly once')
  t.same(echoed, cids(COUNT).filter((cid) => echoed.includes(cid)), 'echoes in the sender\'s order')
  const { messages } = await readUntil(far, (messages) => messages.length === echoed.length, 5 * COUNT)
  t.same(messages.map((m) => m.cid), echoed, 'the other instance got exactly the echoed ones, in that order')

  // A refused cid was not kept as pending: sent again, it goes out.
  const retry = failed[0] as string
  sender.send({ type: 'message', text: 'again', cid: retry })
  t.match(await far.expect('message'), { cid: retry, text: 'again' })
})

t.test('Redis killed mid-stream: every cid gets its echo or an unavailable error naming it, never both, never neither', async (t) => {
  const redis = await startRedis(t)
  const proxy = await startProxy(t, redis.port, { delayMs: 5 })
  const a = await instance(t, proxy.url)
  const sender = await join(a.url, '?name=sender')
  const COUNT = 500
  for (let i = 0; i < COUNT; i++) sender.send({ type: 'message', text: `m${i}`, cid: `c${i}` })
  let killed: Promise<void> | null = null
  const outcome = await readUntil(sender, (messages, errors) => {
    if (messages.length === 50) killed ??= redis.kill()
    // Echoes of what Redis ran before it died may still be on their way: done once every cid has an answer.
    const answered = new Set([...messages.map((m) => m.cid), ...errors.map((e) => e.cid)])
    return answered.size === COUNT
  }, 5 * COUNT)
  await killed
  const echoed = outcome.messages.map((m) => m.cid)
  const failed = outcome.errors.filter((e) => e.cid !== undefined).map((e) => e.cid)
  t.ok(failed.length > 0 && echoed.length >= 50, `${echoed.length} echoed, ${failed.length} refused`)
  t.ok(outcome.errors.every((e) => e.code === 'unavailable'), 'refusals are unavailable')
  t.same(echoed.filter((cid) => failed.includes(cid)), [], 'none both echoed and refused')
  t.same(echoed, cids(COUNT).filter((cid) => echoed.includes(cid)), 'echoes in the sender\'s order')
})
