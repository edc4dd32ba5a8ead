import { createHook } from 'node:async_hooks'
import diagnostics from 'node:diagnostics_channel'
import t from 'tap'
import type { Test } from 'tap'
import { CloseCode } from '../index.js'
import type { ChatClient, FastifyChatOptions, Identity, Refreshed } from '../index.js'
import { Client, listen, refusedWith, within } from './helpers/chat.js'

const DAY = 24 * 60 * 60 * 1000
// Longer than any timer of ws, Fastify or the helpers: only expiry timers last this long.
const EXPIRY_TIMER_MIN = 60 * 60 * 1000
// Timers take at most a signed 32-bit number of milliseconds.
const MAX_TIMER_MS = 2 ** 31 - 1
// How long past an expiry a close may take to arrive on a loaded machine.
const SLACK_MS = 3000

/** A client socket, with its close (code, reason, and when) recorded from the moment it opens. */
interface Watched {
  client: Client
  closed: Promise<{ code: number, reason: string, at: number }>
}

async function connect (url: string, path = '/chat'): Promise<Watched> {
  const client = await Client.connect(url, path)
  const closed = new Promise<{ code: number, reason: string, at: number }>((resolve) => {
    client.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() }))
  })
  return { client, closed }
}

/** Connects, reads `welcome` and joins `room` (no auto-join: no presence frames from other sockets). */
async function joined (url: string, room = 'solo'): Promise<Watched & { expiresAt: number | undefined }> {
  const watched = await connect(url)
  const welcome = await watched.client.expect('welcome')
  watched.client.send({ type: 'join', room })
  await watched.client.expect('joined')
  return { ...watched, expiresAt: welcome.expiresAt }
}

/** One message there and back: the socket is open and served. */
async function roundTrip (t: Test, client: Client, text: string): Promise<void> {
  client.send({ type: 'message', text })
  t.match(await client.expect('message'), { text }, `round trip: ${text}`)
}

/** The app under test: `identify` gives user ann the expiry `expiry()` returns at upgrade time. */
async function app (t: Test, expiry: () => number | undefined, opts: FastifyChatOptions = {}): ReturnType<typeof listen> {
  return await listen(t, {
    defaultRoom: null,
    identify: () => {
      const expiresAt = expiry()
      return expiresAt === undefined ? { id: 'ann' } : { id: 'ann', expiresAt }
    },
    ...opts
  })
}

/**
 * The durations of the live timers of at least EXPIRY_TIMER_MIN created
 * from now until the test ends. Expiry timers are unref'd, so
 * process.getActiveResourcesInfo() does not list them: async_hooks sees
 * each timer made, and Node marks a timer `_destroyed` as soon as it is
 * cleared or has fired (async_hooks' own destroy event comes a turn later).
 */
function watchExpiryTimers (t: Test): () => number[] {
  const made: Array<{ _idleTimeout: number, _destroyed?: boolean }> = []
  const hook = createHook({
    init (_id, type, _trigger, resource) {
      const timer = resource as { _idleTimeout?: unknown, _destroyed?: boolean }
      if (type === 'Timeout' && typeof timer._idleTimeout === 'number' && timer._idleTimeout >= EXPIRY_TIMER_MIN) {
        made.push(timer as { _idleTimeout: number, _destroyed?: boolean })
      }
    }
  }).enable()
  t.teardown(() => { hook.disable() })
  return () => made.filter((timer) => timer._destroyed !== true).map((timer) => timer._idleTimeout)
}

/** The next `closed` event of the plugin's diagnostics channel: the server has forgotten a socket. */
function serverClosed (t: Test): Promise<unknown> {
  const name = 'fastify-chat:connection'
  return new Promise((resolve) => {
    const handler = (event: unknown): void => {
      if ((event as { event?: unknown }).event !== 'closed') return
      diagnostics.unsubscribe(name, handler)
      resolve(event)
    }
    diagnostics.subscribe(name, handler)
    t.teardown(() => { diagnostics.unsubscribe(name, handler) })
  })
}

t.test('CloseCode, from the package index, has 4000 for a disconnect and 4001 for an expired session', async (t) => {
  t.equal(CloseCode.DISCONNECTED, 4000)
  t.equal(CloseCode.SESSION_EXPIRED, 4001)
  t.ok(Object.isFrozen(CloseCode))
})

t.test('a socket closes with 4001 "session expired" at the expiresAt that welcome carries, not before', async (t) => {
  let expiresAt = 0
  const { url } = await app(t, () => expiresAt)
  expiresAt = Date.now() + 1000
  const ann = await joined(url)
  t.equal(ann.expiresAt, expiresAt, 'welcome carries expiresAt')
  await roundTrip(t, ann.client, 'before the expiry')

  const closed = await within(ann.closed, expiresAt - Date.now() + SLACK_MS, 'the expiry')
  t.equal(closed.code, CloseCode.SESSION_EXPIRED)
  t.equal(closed.reason, 'session expired')
  t.ok(closed.at >= expiresAt, `closed ${closed.at - expiresAt} ms after expiresAt, not before`)
})

t.test('a socket without expiresAt gets no expiresAt in welcome', async (t) => {
  const { url } = await app(t, () => undefined)
  const ann = await connect(url)
  t.notOk('expiresAt' in await ann.client.expect('welcome'))
})

t.test('a refresh extends the session past its first expiry; it then closes at the new one', async (t) => {
  let first = 0
  let second = 0
  const calls: Array<[string, string, string]> = []
  const { url } = await app(t, () => first, {
    refresh: (token: string, client: ChatClient) => {
      calls.push([token, client.id, client.clientId])
      return { expiresAt: second }
    }
  })
  // Room for two handshakes and the refresh before the first expiry on a loaded machine.
  first = Date.now() + 1500
  second = first + 1500
  const ann = await connect(url)
  const welcome = await ann.client.expect('welcome')
  // A clock: a socket with the same first expiry that is never refreshed.
  const clock = await connect(url)

  ann.client.send({ type: 'refresh', token: 'fresh-token' })
  t.strictSame(await ann.client.expect('refreshed'), { type: 'refreshed', expiresAt: second })
  t.strictSame(calls, [['fresh-token', 'ann', welcome.clientId]], 'refresh(token, client) of this socket')

  const clockClosed = await within(clock.closed, first - Date.now() + SLACK_MS, 'the first expiry')
  t.equal(clockClosed.code, CloseCode.SESSION_EXPIRED, 'the unrefreshed socket expired')
  t.ok(Date.now() >= first, 'the first expiresAt has passed')
  ann.client.send({ type: 'join', room: 'solo' })
  await ann.client.expect('joined')
  await roundTrip(t, ann.client, 'after the first expiry')

  const closed = await within(ann.closed, second - Date.now() + SLACK_MS, 'the second expiry')
  t.equal(closed.code, CloseCode.SESSION_EXPIRED)
  t.equal(closed.reason, 'session expired')
  t.ok(closed.at >= second, `closed ${closed.at - second} ms after the new expiresAt, not before`)
})

t.test('a refresh answered false closes the socket with 4001 at once', async (t) => {
  const { url } = await app(t, () => Date.now() + DAY, { refresh: () => false })
  const ann = await joined(url)
  ann.client.send({ type: 'refresh', token: 'revoked' })
  // At once: the expiry is a day away, the wait a few seconds.
  const closed = await within(ann.closed, SLACK_MS, 'the close')
  t.equal(closed.code, CloseCode.SESSION_EXPIRED)
  t.equal(closed.reason, 'session expired')
  t.strictSame(ann.client.frames, [], 'no refreshed, no error before the close')
})

t.test('a refresh whose expiresAt has already passed closes at once, without refreshed', async (t) => {
  const { url } = await app(t, () => Date.now() + DAY, { refresh: () => ({ expiresAt: Date.now() - 1000 }) })
  const ann = await joined(url)
  ann.client.send({ type: 'refresh', token: 'stale' })
  const closed = await within(ann.closed, SLACK_MS, 'the close')
  t.equal(closed.code, CloseCode.SESSION_EXPIRED)
  t.strictSame(ann.client.frames, [], 'no refreshed frame')
})

t.test('without the refresh option a refresh frame gets unknown_type, and the socket stays', async (t) => {
  const { url } = await app(t, () => Date.now() + DAY)
  const ann = await joined(url)
  ann.client.send({ type: 'refresh', token: 'anything' })
  t.match(await ann.client.expect('error'), { code: 'unknown_type' })
  await roundTrip(t, ann.client, 'still open')
})

t.test('a refresh that throws or rejects gets internal_error; the socket stays and keeps its expiry', async (t) => {
  let expiresAt = 0
  const { url } = await app(t, () => expiresAt, {
    refresh: (token: string) => {
      if (token === 'throw') throw new Error('token service down')
      return Promise.reject(new Error('token service down'))
    }
  })
  expiresAt = Date.now() + 1500
  const ann = await joined(url)
  ann.client.send({ type: 'refresh', token: 'throw' })
  t.match(await ann.client.expect('error'), { code: 'internal_error' }, 'a throw')
  ann.client.send({ type: 'refresh', token: 'reject' })
  t.match(await ann.client.expect('error'), { code: 'internal_error' }, 'a rejection')
  await roundTrip(t, ann.client, 'still open')

  const closed = await within(ann.closed, expiresAt - Date.now() + SLACK_MS, 'the original expiry')
  t.equal(closed.code, CloseCode.SESSION_EXPIRED, 'closed at the expiry it had')
  t.ok(closed.at >= expiresAt, 'not before it')
})

t.test('a refresh returning neither false nor { expiresAt: number } gets internal_error, and changes nothing', async (t) => {
  const junk: unknown[] = [undefined, null, true, 0, {}, { expiresAt: 'tomorrow' }, { expiresAt: Number.NaN }, { expiresAt: Infinity }, { expiresAt: null }]
  let next = 0
  let expiresAt = 0
  const { url } = await app(t, () => expiresAt, {
    refresh: async () => junk[next++] as Refreshed
  })
  expiresAt = Date.now() + 60_000
  const ann = await joined(url)
  for (const value of junk) {
    ann.client.send({ type: 'refresh', token: 'junk' })
    t.match(await ann.client.expect('error'), { code: 'internal_error' }, `for ${JSON.stringify(value) ?? 'undefined'}`)
  }
  t.equal(next, junk.length, 'refresh ran for each')
  await roundTrip(t, ann.client, 'still open')
})

t.test('a refresh on a socket without expiresAt sets one', async (t) => {
  let expiresAt = 0
  const { url } = await app(t, () => undefined, { refresh: () => ({ expiresAt }) })
  const ann = await joined(url)
  t.equal(ann.expiresAt, undefined, 'no expiry to start with')
  expiresAt = Date.now() + 500
  ann.client.send({ type: 'refresh', token: 'first' })
  t.strictSame(await ann.client.expect('refreshed'), { type: 'refreshed', expiresAt })
  const closed = await within(ann.closed, expiresAt - Date.now() + SLACK_MS, 'the expiry the refresh set')
  t.equal(closed.code, CloseCode.SESSION_EXPIRED)
  t.ok(closed.at >= expiresAt, 'not before it')
})

t.test('identify: an expiresAt that is not a finite number refuses the upgrade with 500; one already past, with 401', async (t) => {
  const given: Record<string, unknown> = {
    string: String(Date.now() + DAY),
    nan: Number.NaN,
    infinity: Infinity,
    null: null,
    object: { at: Date.now() + DAY },
    past: Date.now() - 1000
  }
  const { app: server, url } = await listen(t, {
    identify: (request) => ({ id: 'ann', expiresAt: given[(request.query as { case: string }).case] as number } satisfies Identity)
  })
  for (const name of ['string', 'nan', 'infinity', 'null', 'object']) {
    t.equal(await refusedWith(`${url}/chat?case=${name}`), 500, name)
  }
  t.equal(await refusedWith(`${url}/chat?case=past`), 401, 'past')
  t.equal(server.chat.size, 0, 'no socket opened')
})

t.test('an expiry past the longest timer is reached in steps, not at once', async (t) => {
  const timers = watchExpiryTimers(t)
  const { url } = await app(t, () => Date.now() + 30 * DAY)
  const ann = await joined(url)
  await roundTrip(t, ann.client, 'open')
  // Node turns a longer timeout into 1 ms (and a warning): the socket would expire at once.
  t.strictSame(timers(), [MAX_TIMER_MS], 'one timer, of the longest a timer can wait')
})

t.test('app.close() with sockets waiting to expire leaves no expiry timer behind', async (t) => {
  const timers = watchExpiryTimers(t)
  const { app: server, url } = await app(t, () => Date.now() + DAY, { refresh: () => ({ expiresAt: Date.now() + 2 * DAY }) })
  const sockets = [await joined(url), await joined(url), await joined(url)]
  t.equal(timers().length, 3, 'a timer per socket')
  sockets[0].client.send({ type: 'refresh', token: 'later' })
  await sockets[0].client.expect('refreshed')
  t.equal(timers().length, 3, 'a refresh replaces the socket\'s timer')

  await server.close()
  const codes = await within(Promise.all(sockets.map(async ({ closed }) => (await closed).code)), SLACK_MS, 'every close')
  t.strictSame(codes, [CloseCode.GOING_AWAY, CloseCode.GOING_AWAY, CloseCode.GOING_AWAY])
  t.strictSame(timers(), [], 'no expiry timer left')
})

t.test('a socket its client closes leaves no expiry timer behind', async (t) => {
  const timers = watchExpiryTimers(t)
  const { url } = await app(t, () => Date.now() + DAY)
  const ann = await joined(url)
  t.equal(timers().length, 1)
  const forgotten = serverClosed(t)
  ann.client.close()
  await within(forgotten, SLACK_MS, 'the server to forget the socket')
  t.strictSame(timers(), [])
})

t.test('a refresh that resolves after its socket closed sets no expiry timer', async (t) => {
  const timers = watchExpiryTimers(t)
  let answer: (value: Refreshed) => void = () => {}
  let asked: () => void = () => {}
  const refreshing = new Promise<void>((resolve) => { asked = resolve })
  const { url } = await app(t, () => undefined, {
    refresh: async () => await new Promise<Refreshed>((resolve) => {
      answer = resolve
      asked()
    })
  })
  const ann = await joined(url)
  ann.client.send({ type: 'refresh', token: 'slow' })
  await within(refreshing, SLACK_MS, 'refresh to be called')
  const forgotten = serverClosed(t)
  ann.client.close()
  await within(forgotten, SLACK_MS, 'the server to forget the socket')

  answer({ expiresAt: Date.now() + DAY })
  // What follows the answer runs in microtasks: one turn of the event loop sees it done.
  await new Promise((resolve) => setImmediate(resolve))
  t.strictSame(timers(), [], 'no timer holds the closed socket')
})
