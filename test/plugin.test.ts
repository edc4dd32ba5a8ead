import { once } from 'node:events'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import t from 'tap'
import WebSocket from 'ws'
import fastifyChat from '../index.js'
import type { ChatClient, ChatMessage } from '../index.js'
import { Client, join, listen, messages, within } from './helpers/chat.js'

t.test('a message reaches every member, the sender included', async (t) => {
  const { url } = await listen(t)
  const alice = await join(url, '?name=alice')
  const bob = await join(url, '?name=bob')
  await alice.expect('presence')
  alice.send({ type: 'message', text: 'hi all', cid: 'c-1' })
  for (const client of [alice, bob]) {
    const m = await client.expect('message')
    t.match(m, { room: 'lobby', offset: 1, text: 'hi all', cid: 'c-1', from: { name: 'alice' } })
    t.type(m.ts, 'number')
  }
})

t.test('echo: false leaves the sender out', async (t) => {
  const { url } = await listen(t, { echo: false })
  const alice = await join(url, '?name=alice')
  const bob = await join(url, '?name=bob')
  await alice.expect('presence')
  alice.send('from alice')
  t.equal((await bob.expect('message')).text, 'from alice')
  bob.send('from bob')
  // alice's next frame is bob's message: her own never came back.
  t.equal((await alice.expect('message')).text, 'from bob')
})

t.test('with compression negotiated, broadcasts go through ws and arrive the same', async (t) => {
  const app = Fastify()
  await app.register(fastifyWebsocket, { options: { perMessageDeflate: true } })
  await app.register(fastifyChat, { echo: false })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const alice = await join(url, '?name=alice', { perMessageDeflate: true })
  const bob = await join(url, '?name=bob', { perMessageDeflate: true })
  t.equal(alice.ws.extensions, 'permessage-deflate')
  t.match(await alice.expect('presence'), { event: 'join', user: { name: 'bob' } })
  // A burst in one iteration: one batch, which ws compresses frame by frame.
  await Promise.all([app.chat.broadcast('lobby', 'one'), app.chat.broadcast('lobby', 'two')])
  bob.send('from bob')
  for (const client of [alice, bob]) {
    t.same([(await client.expect('message')).text, (await client.expect('message')).text], ['one', 'two'])
  }
  t.equal((await alice.expect('message')).text, 'from bob', 'alice gets it; bob (echo off) does not')
  alice.send('from alice')
  t.equal((await bob.expect('message')).text, 'from alice', "bob's next message is alice's: his own never came")
})

t.test('messages handled in consecutive event-loop iterations share writes to a socket', async (t) => {
  let counting = false
  let writes = 0
  const { app, url } = await listen(t, {}, (app) => {
    // Counts what is written to each real TCP socket the server accepts.
    app.server.on('connection', (socket) => {
      const write = socket.write
      socket.write = function (this: typeof socket, ...args: Parameters<typeof write>) {
        if (counting) writes++
        return write.apply(this, args)
      } as typeof write
    })
  })
  const client = await join(url)
  counting = true
  // One message per iteration: written per iteration, that would be 20 writes.
  for (let i = 0; i < 20; i++) {
    await app.chat.broadcast('lobby', `m${i}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
  const got = await messages(client, 20)
  t.same(got.map((m) => m.text), Array.from({ length: 20 }, (_, i) => `m${i}`), 'all of them, in order')
  t.ok(writes > 0 && writes < 20, `${writes} writes for 20 messages`)
})

t.test('plain-text frames go to the first room, as in the classic chat', async (t) => {
  const { url } = await listen(t)
  const alice = await join(url)
  alice.send('  hello {not json}')
  t.equal((await alice.expect('message')).text, '  hello {not json}')
})

t.test('rooms are isolated', async (t) => {
  const { url } = await listen(t)
  const alice = await join(url, '?room=dev')
  const bob = await join(url, '?room=lobby')
  alice.send({ type: 'message', text: 'dev only', room: 'dev' })
  t.equal((await alice.expect('message')).text, 'dev only')
  bob.send('marker')
  const next = await bob.expect('message')
  t.equal(next.text, 'marker', 'bob saw nothing from dev before his own marker')
  t.equal(next.offset, 1, 'each room numbers its own messages')
})

t.test('join, leave and presence', async (t) => {
  const { app, url } = await listen(t)
  const alice = await join(url, '?name=alice')
  const bob = await Client.connect(url, '/chat?name=bob')
  const welcome = await bob.expect('welcome')
  const joined = await bob.expect('joined')
  t.same([joined.users.map((u) => u.name).sort(), joined.count], [['alice', 'bob'], 2])
  t.match(await alice.expect('presence'), { event: 'join', room: 'lobby', user: { id: welcome.id, name: 'bob' }, count: 2 })
  t.same((await app.chat.presence('lobby')).users.map((u) => u.name).sort(), ['alice', 'bob'])

  bob.send({ type: 'name', name: '  robert\u0007 ' })
  t.same(await bob.expect('renamed'), { type: 'renamed', name: 'robert', previous: 'bob' })
  t.match(await alice.expect('presence'), { event: 'rename', user: { name: 'robert' }, previous: 'bob' })

  bob.send({ type: 'join', room: 'dev' })
  t.match(await bob.expect('joined'), { room: 'dev', offset: 0, recovered: false, history: [] })
  t.same(app.chat.rooms().sort(), ['dev', 'lobby'])

  // Joining again answers joined and tells no one.
  bob.send({ type: 'join', room: 'lobby' })
  t.match(await bob.expect('joined'), { room: 'lobby' })

  bob.send({ type: 'leave', room: 'lobby' })
  t.same(await bob.expect('left'), { type: 'left', room: 'lobby' })
  t.match(await alice.expect('presence'), { event: 'leave', user: { name: 'robert' }, count: 1 })

  bob.close()
  await bob.closed
  alice.send('marker')
  t.equal((await alice.expect('message')).text, 'marker', 'no presence for a room alice is not in')
  t.same(app.chat.rooms(), ['lobby'])
})

t.test('a user on two sockets is present once', async (t) => {
  const { app, url } = await listen(t, { identify: (req) => ({ id: String((req.query as { u: string }).u) }) })
  const alice = await join(url, '?u=alice')
  const tab1 = await join(url, '?u=bob')
  t.equal((await alice.expect('presence')).event, 'join')
  const tab2 = await join(url, '?u=bob')
  t.equal((await app.chat.presence('lobby')).count, 2)
  t.equal(await app.chat.occupancy('lobby'), 2)
  tab1.close()
  await tab1.closed
  tab2.send('still here')
  t.equal((await alice.expect('message')).text, 'still here', 'no leave or join while one tab stays')
  tab2.close()
  t.match(await alice.expect('presence'), { event: 'leave', user: { id: 'bob' } })
})

t.test('history on join and recovery with since', async (t) => {
  const { app, url } = await listen(t, { historySize: 3 })
  for (const text of ['one', 'two', 'three', 'four']) await app.chat.broadcast('lobby', text)

  const fresh = await Client.connect(url)
  await fresh.expect('welcome')
  const joined = await fresh.expect('joined')
  t.equal(joined.offset, 4)
  t.equal(joined.recovered, false)
  t.same(joined.history.map((m) => m.text), ['two', 'three', 'four'], 'latest historySize, oldest first')

  const { epoch } = joined
  fresh.send({ type: 'join', room: 'lobby', since: { epoch, offset: 2 } })
  const resumed = await fresh.expect('joined')
  t.equal(resumed.recovered, true)
  t.same(resumed.history.map((m) => m.offset), [3, 4], 'exactly the missed messages')

  fresh.send({ type: 'join', room: 'lobby', since: { epoch, offset: 4 } })
  t.match(await fresh.expect('joined'), { recovered: true, history: [] })

  fresh.send({ type: 'join', room: 'lobby', since: { epoch: 'other', offset: 2 } })
  const unknown = await fresh.expect('joined')
  t.equal(unknown.recovered, false, 'an unknown epoch cannot be recovered')
  t.same(unknown.history.map((m) => m.offset), [2, 3, 4])

  fresh.send({ type: 'join', room: 'lobby', since: { epoch, offset: 0 } })
  const trimmed = await fresh.expect('joined')
  t.equal(trimmed.recovered, false, 'message 1 was trimmed')
  t.same(trimmed.history.map((m) => m.offset), [2, 3, 4])

  fresh.send({ type: 'join', room: 'lobby', since: { epoch, offset: 9 } })
  t.equal((await fresh.expect('joined')).recovered, false, 'an offset from the future is not trusted')

  const viaQuery = await Client.connect(url, `/chat?since=${epoch}:3`)
  await viaQuery.expect('welcome')
  t.match(await viaQuery.expect('joined'), { recovered: true, history: [{ offset: 4, text: 'four' }] })
})

t.test('messages published during a join replay arrive once, after it', async (t) => {
  const { app, url } = await listen(t)
  const alice = await join(url)
  await app.chat.broadcast('lobby', 'before')
  t.equal((await alice.expect('message')).offset, 1)
  const bob = await Client.connect(url)
  // Fire a burst as bob's join is being served.
  const sent = Promise.all([app.chat.broadcast('lobby', 'a'), app.chat.broadcast('lobby', 'b')])
  await bob.expect('welcome')
  const joined = await bob.expect('joined')
  await sent
  const seen = joined.history.map((m) => m.offset)
  while (seen.at(-1) !== 3) seen.push((await bob.expect('message')).offset)
  t.same(seen, [1, 2, 3], 'every message exactly once, in order')
})

t.test('every error code, with the cid echoed', async (t) => {
  const { url } = await listen(t, {
    maxMessageLength: 5,
    maxRoomsPerClient: 2,
    onMessage: (m) => {
      if (m.text === 'nope') return false
      if (m.text === 'boom') throw new Error('hook failed')
      return m.text === 'shout' ? { ...m, text: 'SHOUT' } : undefined
    }
  })
  const c = await join(url)
  const cases: Array<[string | object, string]> = [
    ['{not json', 'invalid_message'],
    ['{"type":5}', 'invalid_message'],
    ['{"type":"message","text":"x","cid":7}', 'invalid_message'],
    [{ text: 'no type' }, 'invalid_message'],
    [{ type: 'message', text: 7 }, 'invalid_message'],
    [{ type: 'dance' }, 'unknown_type'],
    [{ type: 'message', text: '   ' }, 'empty_text'],
    ['   ', 'empty_text'],
    [{ type: 'message', text: '123456' }, 'text_too_long'],
    [{ type: 'join', room: 'no spaces' }, 'invalid_room'],
    [{ type: 'message', text: 'hi', room: 'elsewhere' }, 'not_in_room'],
    [{ type: 'leave', room: 'elsewhere' }, 'not_in_room'],
    [{ type: 'name', name: '\u0000\u0001' }, 'invalid_name'],
    [{ type: 'message', text: 'nope' }, 'rejected'],
    [{ type: 'message', text: 'boom' }, 'internal_error']
  ]
  for (const [frame, code] of cases) {
    c.send(frame)
    const error = await c.expect('error')
    t.equal(error.code, code, `${JSON.stringify(frame)} → ${code}`)
    t.type(error.message, 'string')
  }
  c.send({ type: 'join', room: 'two' })
  await c.expect('joined')
  c.send({ type: 'join', room: 'three' })
  t.equal((await c.expect('error')).code, 'too_many_rooms', 'the auto-joined room counts')

  c.send({ type: 'message', text: 'nope', cid: 'x1' })
  t.match(await c.expect('error'), { code: 'rejected', cid: 'x1' })
  c.send({ type: 'message', text: 'shout' })
  t.equal((await c.expect('message')).text, 'SHOUT', 'onMessage may change the text')
  t.equal(c.ws.readyState, WebSocket.OPEN, 'the connection stays open')
})

t.test('a repeated cid is broadcast once; the sender gets the stored copy back', async (t) => {
  const { app, url } = await listen(t)
  const alice = await join(url, '?name=alice')
  const bob = await join(url, '?name=bob')
  await alice.expect('presence')
  alice.send({ type: 'message', text: 'once', cid: 'same' })
  const first = await alice.expect('message')
  t.equal((await bob.expect('message')).offset, first.offset)
  alice.send({ type: 'message', text: 'once', cid: 'same' })
  t.same(await alice.expect('message'), first, 'the retry is answered with the stored message')
  alice.send('marker')
  t.equal((await bob.expect('message')).text, 'marker', 'bob never saw the retry')
  t.equal((await app.chat.history('lobby')).length, 2)
})

t.test('names and rooms from the query', async (t) => {
  const { url } = await listen(t, { defaultRoom: null })
  const guest = await Client.connect(url)
  t.match((await guest.expect('welcome')).name, /^guest-[0-9a-f]{4}$/)
  guest.send('hello?')
  t.equal((await guest.expect('error')).code, 'not_in_room', 'defaultRoom null joins nothing')

  const long = await Client.connect(url, `/chat?name=${'x'.repeat(33)}`)
  t.match((await long.expect('welcome')).name, /^guest-/)
  t.equal((await long.expect('error')).code, 'invalid_name')

  const badRoom = await Client.connect(url, '/chat?room=a%20b&name=%20ann%20')
  t.equal((await badRoom.expect('welcome')).name, 'ann')
  t.equal((await badRoom.expect('error')).code, 'invalid_room')
})

t.test('binary frames close the socket with 1003', async (t) => {
  const { url } = await listen(t)
  const c = await join(url)
  c.ws.send(Buffer.from('hi'), { binary: true })
  t.equal((await c.closed).code, 1003)
})

t.test('identify', async (t) => {
  const seen: string[] = []
  const { url } = await listen(t, {
    identify: async (request) => {
      const token = request.headers.authorization
      if (token === undefined) throw new Error('no token')
      if (token === 'banned') return false
      if (token === 'teapot') throw Object.assign(new Error('teapot'), { statusCode: 418 })
      seen.push(token)
      return { id: `user-${token}`, name: token }
    }
  })

  for (const [authorization, status] of [[undefined, 401], ['banned', 403], ['teapot', 418]] as const) {
    const ws = new WebSocket(`${url}/chat`, authorization === undefined ? {} : { headers: { authorization } })
    ws.on('error', () => {})
    const [, response] = await within(once(ws, 'unexpected-response'))
    t.equal(response.statusCode, status, `refused with ${status} before any socket opened`)
    ws.terminate()
  }

  const ok = await Client.connect(url, '/chat?name=ignored', { authorization: 'ann' })
  const welcome = await ok.expect('welcome')
  t.match(welcome.clientId, /^[\w-]{16}$/, 'a clientId of its own')
  t.same(welcome, { type: 'welcome', id: 'user-ann', clientId: welcome.clientId, name: 'ann' })
  t.same(seen, ['ann'])
})

t.test('app.chat', async (t) => {
  const { app, url } = await listen(t)
  const c = await join(url)
  t.equal(app.chat.size, 1)
  const stored = await app.chat.broadcast('lobby', 'from the server', { from: { id: 'bot', name: 'Bot' } })
  t.match(stored, { room: 'lobby', offset: 1, text: 'from the server', from: { id: 'bot', name: 'Bot' } })
  t.same(await c.expect('message'), { type: 'message', ...stored })
  const system = await app.chat.broadcast('empty-room', 'nobody listens')
  t.same(system.from, { id: 'system', name: 'system' })

  for (let i = 0; i < 4; i++) await app.chat.broadcast('lobby', `m${i}`)
  t.same((await app.chat.history('lobby')).map((m: ChatMessage) => m.offset), [1, 2, 3, 4, 5])
  t.same((await app.chat.history('lobby', { since: 2, limit: 2 })).map((m) => m.offset), [3, 4])
  t.same((await app.chat.history('lobby', { limit: 2 })).map((m) => m.offset), [4, 5])

  await t.rejects(app.chat.broadcast('bad room', 'x'), { code: 'FST_CHAT_INVALID_ROOM' })
  await t.rejects(app.chat.broadcast('lobby', '  '), { code: 'FST_CHAT_INVALID_MESSAGE' })
  await t.rejects(app.chat.history('bad room'), { code: 'FST_CHAT_INVALID_ROOM' })
  await t.rejects(app.chat.history('lobby', { limit: -1 }), { code: 'FST_CHAT_INVALID_ARGUMENT' })
  await t.rejects(app.chat.history('lobby', { since: 1.5 }), { code: 'FST_CHAT_INVALID_ARGUMENT' })
  t.same(await app.chat.presence('nowhere'), { users: [], count: 0 })
  await t.rejects(app.chat.presence('bad room'), { code: 'FST_CHAT_INVALID_ROOM' })
})

t.test('since recovery after history is trimmed by app.chat.history', async (t) => {
  const { app } = await listen(t, { historySize: 2 })
  for (let i = 0; i < 5; i++) await app.chat.broadcast('lobby', `m${i}`)
  t.same((await app.chat.history('lobby', { since: 1 })).map((m) => m.offset), [4, 5], 'only what is kept')
})

t.test('app.close() closes every socket with 1001, promptly', async (t) => {
  const { app, url } = await listen(t)
  const clients = await Promise.all(Array.from({ length: 20 }, () => join(url)))
  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 1500, 'closed promptly')
  for (const client of clients) t.equal((await client.closed).code, 1001)
  t.equal(app.chat.size, 0)
  await t.rejects(app.chat.broadcast('lobby', 'late'), { code: 'FST_CHAT_CLOSED' })
  t.equal(app.server.listenerCount('upgrade'), 0, 'no upgrade listener left')
})

t.test('works when the host registered @fastify/websocket', async (t) => {
  const app = Fastify()
  await app.register(fastifyWebsocket)
  await app.register(fastifyChat, { path: '/ws' })
  app.get('/other', { websocket: true }, (socket) => { socket.send('"other"') })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const base = `ws://127.0.0.1:${port}`
  await t.rejects(Client.connect(base, '/chat'), 'the path option moved the route')
  const other = await Client.connect(base, '/other')
  const chat = await Client.connect(base, '/ws')
  await chat.expect('welcome')
  await chat.expect('joined')
  await app.close()
  t.equal((await chat.closed).code, 1001)
  t.ok((await other.closed).code, 'the host\'s own sockets close too')
})

t.test('injectWS works without a network', async (t) => {
  const app = Fastify()
  await app.register(fastifyChat)
  t.teardown(() => app.close())
  await app.ready()
  let client: Client | undefined
  // Listen from the start: the first frames can arrive with the handshake.
  const ws = await app.injectWS('/chat?name=inj', {}, { onInit: (ws) => { client = new Client(ws) } })
  if (client === undefined) throw new Error('onInit did not run')
  t.match(await client.expect('welcome'), { name: 'inj' })
  await client.expect('joined')
  client.send('via inject')
  t.equal((await client.expect('message')).text, 'via inject')
  ws.terminate()
})

t.test('serves the browser client unless told not to', async (t) => {
  const app = Fastify()
  await app.register(fastifyChat)
  t.teardown(() => app.close())
  const res = await app.inject('/chat/client.js')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /javascript/)
  t.match(res.body, /export/)
  t.notMatch(res.body, /sourceMappingURL/, 'no link to a map that is not served')

  const off = Fastify()
  await off.register(fastifyChat, { serveClient: false })
  t.teardown(() => off.close())
  t.equal((await off.inject('/chat/client.js')).statusCode, 404)
})

t.test('an injected socket left open does not hold app.close() past closeTimeout', async (t) => {
  const app = Fastify()
  await app.register(fastifyChat, { closeTimeout: 200 })
  await app.ready()
  const ws = await app.injectWS('/chat')
  const closed = once(ws, 'close')
  const started = performance.now()
  await app.close()
  t.ok(performance.now() - started < 1500, 'closed within closeTimeout and a margin')
  await within(closed)
  t.equal(app.chat.size, 0)
})

t.test('a reconnect within presenceGraceMs does not flash leave and join', async (t) => {
  const { url } = await listen(t, {
    presenceGraceMs: 60_000,
    identify: (req) => ({ id: String((req.query as { u: string }).u), name: String((req.query as { u: string }).u) })
  })
  const alice = await join(url, '?u=alice')
  const bob = await join(url, '?u=bob')
  t.equal((await alice.expect('presence')).event, 'join')
  bob.close()
  await bob.closed
  const back = await join(url, '?u=bob')
  back.send('back again')
  t.equal((await alice.expect('message')).text, 'back again', 'no leave, no join in between')

  const carol = await join(url, '?u=carol')
  t.equal((await alice.expect('presence')).event, 'join')
  carol.close()
  await carol.closed
  alice.send('marker')
  t.equal((await alice.expect('message')).text, 'marker', 'the leave waits for the grace period')
})

t.test('users still in their grace period are announced gone when the app closes', async (t) => {
  const { app, url } = await listen(t, { presenceGraceMs: 60_000 })
  const alice = await join(url)
  await join(url)
  await alice.expect('presence')
  const started = performance.now()
  await app.close()
  t.ok(performance.now() - started < 1500, 'the grace timers do not hold close')
  t.equal((await alice.closed).code, 1001)
})

t.test('presenceListMax, presenceEventsMax and occupancyIntervalMs reach the hub and app.chat', async (t) => {
  const { app, url } = await listen(t, { presenceListMax: 1, presenceEventsMax: 1, occupancyIntervalMs: 60_000 })
  const alice = await join(url, '?name=alice')
  const bob = await Client.connect(url, '/chat?name=bob')
  await bob.expect('welcome')
  t.match(await bob.expect('joined'), { users: [{ name: 'alice' }], count: 2 }, 'one listed, both counted')
  t.strictSame(await alice.expect('occupancy'), { type: 'occupancy', room: 'lobby', count: 2 }, 'a count instead of a join')
  t.match(await app.chat.presence('lobby'), { users: [{ name: 'alice' }], count: 2, next: String })
  t.strictSame(await bob.expect('occupancy'), { type: 'occupancy', room: 'lobby', count: 2 }, 'every member gets the count')
  bob.send({ type: 'members', room: 'lobby', cid: 'm' })
  t.match(await bob.expect('members'), { users: [{ name: 'alice' }], count: 2, cid: 'm' }, 'a members page of presenceListMax by default')
})

t.test('app.chat holds the documented members and nothing else', async (t) => {
  const app = Fastify()
  await app.register(fastifyChat)
  t.teardown(() => app.close())
  t.same(Object.keys(app.chat).sort(), ['addToRoom', 'broadcast', 'disconnect', 'history', 'occupancy', 'presence', 'removeFromRoom', 'rooms', 'size', 'stats', 'unread'])
  t.equal(Object.getPrototypeOf(app.chat), Object.prototype, 'a plain object, not the hub behind it')
  t.ok(Object.isFrozen(app.chat))
  for (const internal of ['join', 'remove', 'closeAll', 'publish', 'node', 'leave', 'add']) {
    t.notOk(internal in app.chat, `no ${internal}`)
  }
  t.equal(app.chat.size, 0)
})

t.test('onMessage gets a read-only view of the client, with what identify returned as data', async (t) => {
  const seen: Array<{ keys: string[], view: ChatClient }> = []
  const { url } = await listen(t, {
    identify: (request) => (request.headers['x-user'] === 'ann' ? { id: 'u-ann', name: 'ann', data: { role: 'staff' } } : {}),
    onMessage: (_message, client) => {
      seen.push({ keys: Object.keys(client), view: client })
    }
  })
  const ann = new Client(new WebSocket(`${url}/chat`, { headers: { 'x-user': 'ann' } }))
  await ann.expect('welcome')
  await ann.expect('joined')
  ann.send({ type: 'join', room: 'dev' })
  await ann.expect('joined')
  ann.send('hello')
  await ann.expect('message')
  const guest = await join(url, '?name=gus')
  guest.send('hi')
  await guest.expect('message')

  const [fromAnn, fromGuest] = seen
  if (fromAnn === undefined || fromGuest === undefined) throw new Error('onMessage did not run twice')
  const view = fromAnn.view
  t.same(fromAnn.keys, [], 'no own fields: nothing but the getters')
  t.match({ id: view.id, name: view.name, rooms: [...view.rooms], data: view.data }, { id: 'u-ann', name: 'ann', rooms: ['lobby', 'dev'], data: { role: 'staff' } })
  t.equal(view.request.headers['x-user'], 'ann')
  for (const hidden of ['socket', 'close', 'send', 'sendRaw', 'conn']) t.notOk(hidden in view, `no ${hidden}`)
  t.throws(() => { (view as { name: string }).name = 'mallory' }, TypeError, 'fields cannot be assigned')
  t.throws(() => { (view as unknown as { socket: unknown }).socket = {} }, TypeError, 'nor added')
  t.equal(view.name, 'ann')
  ;(view.rooms as Set<string>).add('secret')
  t.notOk(view.rooms.has('secret'), 'rooms is a copy')
  t.equal(fromGuest.view.data, undefined, 'no data without identify\'s')
  t.equal(fromGuest.view.name, 'gus')
  ann.send({ type: 'name', name: 'anna' })
  // Gus's arrival and message come first.
  while ((await ann.next()).type !== 'renamed');
  t.equal(view.name, 'anna', 'the view follows a rename')
})
