// Presence in big rooms, end to end over real sockets: `joined` lists a page
// and counts everyone, `members` pages the rest, and above
// presenceEventsMax members get coalesced `occupancy` counts instead of an
// event per join and leave.
import type { FastifyRequest } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import type { FastifyChatOptions, MembersFrame, ServerFrame, User } from '../index.js'
import { Client, join, listen } from './helpers/chat.js'

const byQuery = (req: FastifyRequest): { id: string, name: string } => {
  const { u } = req.query as { u: string }
  return { id: u, name: `name-${u}` }
}

async function server (t: Test, opts: FastifyChatOptions = {}): Promise<Awaited<ReturnType<typeof listen>>> {
  return await listen(t, { identify: byQuery, ...opts })
}

/** Connects users `ids` to the lobby, a few at a time, each having read its `joined`. */
async function joinAll (url: string, ids: string[]): Promise<Client[]> {
  const clients: Client[] = []
  for (let i = 0; i < ids.length; i += 25) {
    clients.push(...await Promise.all(ids.slice(i, i + 25).map(async (id) => await join(url, `?u=${id}`))))
  }
  return clients
}

/** The next frame of `client` that is neither presence nor occupancy: what a request was answered with. */
async function answer (client: Client): Promise<ServerFrame> {
  for (let i = 0; i < 10_000; i++) {
    const frame = await client.next()
    if (frame.type !== 'presence' && frame.type !== 'occupancy') return frame
  }
  throw new Error('no answer among 10,000 frames')
}

/** Pages the lobby with `members` from `client`, calling `between` after each page; bounded. */
async function pageAll (client: Client, limit: number, between: (page: MembersFrame) => Promise<void> = async () => {}): Promise<{ users: User[], pages: MembersFrame[] }> {
  const users: User[] = []
  const pages: MembersFrame[] = []
  let after: string | undefined
  for (let i = 0; i < 1000; i++) {
    client.send(after === undefined ? { type: 'members', room: 'lobby', limit } : { type: 'members', room: 'lobby', limit, after })
    const page = await answer(client)
    if (page.type !== 'members') throw new Error(`expected members, got ${JSON.stringify(page)}`)
    pages.push(page)
    users.push(...page.users)
    if (page.next === undefined) return { users, pages }
    after = page.next
    await between(page)
  }
  throw new Error('paging did not end')
}

const ids = (n: number, prefix = 'u'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`)

t.test('joined lists presenceListMax users and counts them all; members and app.chat.presence page the rest, each once', async (t) => {
  // Few events, so 150 joins do not send 11,000 presence frames.
  const { app, url } = await server(t, { presenceEventsMax: 5 })
  const everyone = ids(150)
  // The first one alone, so it sees every join after it.
  const first = await join(url, `?u=${everyone[0]}`)
  await joinAll(url, everyone.slice(1, 149))
  const last = await Client.connect(url, `/chat?u=${everyone[149]}`)
  await last.expect('welcome')
  const joined = await last.expect('joined')
  t.equal(joined.users.length, 100, 'presenceListMax (100) users listed')
  t.equal(joined.count, 150, 'all 150 counted')
  t.equal(new Set(joined.users.map((u) => u.id)).size, 100, 'each once')
  t.ok(joined.users.every((u) => u.name === `name-${u.id}`), 'with their names')
  t.type(joined.next, 'string', 'and the cursor of the rest')
  last.send({ type: 'members', room: 'lobby', after: joined.next, limit: 1000, cid: 'rest' })
  const rest = await answer(last) as MembersFrame
  t.equal(rest.users.length, 50, 'members after joined.next lists the other 50')
  t.equal(rest.next, undefined, 'on the last page')
  t.strictSame([...joined.users, ...rest.users].map((u) => u.id).sort(), everyone, 'joined and the rest: every user once')

  const { users, pages } = await pageAll(last, 40)
  t.strictSame(users.map((u) => u.id).sort(), everyone, 'members pages list every user once')
  t.strictSame(pages.map((p) => p.users.length), [40, 40, 40, 30])
  t.ok(pages.every((p) => p.count === 150 && p.room === 'lobby'))

  last.send({ type: 'members', room: 'lobby', cid: 'c1' })
  const defaulted = await answer(last)
  t.match(defaulted, { type: 'members', cid: 'c1', count: 150 })
  t.equal((defaulted as MembersFrame).users.length, 100, 'presenceListMax users by default')

  const listed: string[] = []
  let after: string | undefined
  for (let i = 0; i < 100; i++) {
    const page = await app.chat.presence('lobby', after === undefined ? { limit: 64 } : { limit: 64, after })
    listed.push(...page.users.map((u) => u.id))
    if (page.next === undefined) break
    after = page.next
  }
  t.strictSame(listed.sort(), everyone, 'app.chat.presence pages the same way')
  t.equal(await app.chat.occupancy('lobby'), 150)
  const firstGot = first.frames
  t.ok(firstGot.every((f) => f.type !== 'presence' || f.count <= 5), 'the first member got no per-user event above presenceEventsMax')
  t.equal(firstGot.filter((f) => f.type === 'presence').length, 4, 'but one for each join up to it')
  t.ok(firstGot.some((f) => f.type === 'occupancy'), 'and counts above it')
})

t.test('members paging while users leave between pages lists nobody twice, and everyone who stayed', async (t) => {
  const { url } = await server(t)
  const observer = await join(url, '?u=observer')
  const everyone = ids(30)
  const clients = await joinAll(url, everyone)
  for (let i = 0; i < everyone.length; i++) await observer.expect('presence')
  const byId = new Map(everyone.map((id, i) => [id, clients[i]]))
  const left = new Set<string>()
  const listedSoFar = new Set<string>(['observer'])
  // After each page: one user already listed and one not yet listed leave.
  const { users } = await pageAll(observer, 4, async (page) => {
    for (const u of page.users) listedSoFar.add(u.id)
    const gone = [
      everyone.find((id) => listedSoFar.has(id) && !left.has(id)),
      [...everyone].reverse().find((id) => !listedSoFar.has(id) && !left.has(id))
    ].filter((id) => id !== undefined)
    for (const id of gone) {
      left.add(id)
      byId.get(id)?.close()
      t.match(await observer.expect('presence'), { event: 'leave', user: { id } })
    }
  })
  const counts = new Map<string, number>()
  for (const u of users) counts.set(u.id, (counts.get(u.id) ?? 0) + 1)
  t.strictSame([...counts].filter(([, n]) => n > 1), [], 'nobody twice')
  t.ok(left.size >= 6, `${left.size} left while paging`)
  const stayed = everyone.filter((id) => !left.has(id))
  t.strictSame(stayed.filter((id) => !counts.has(id)), [], 'everyone present throughout was listed')
  t.ok(counts.has('observer'))
})

t.test('above presenceEventsMax: occupancy instead of events; back at the limit, the count and then events again', async (t) => {
  const { app, url } = await server(t, { presenceEventsMax: 5, occupancyIntervalMs: 60_000 })
  const observer = await join(url, '?u=observer')
  const clients = await joinAll(url, ids(4))
  for (let count = 2; count <= 5; count++) {
    t.match(await observer.expect('presence'), { event: 'join', count }, `a join event, with the count ${count}`)
  }
  const sixth = await join(url, '?u=sixth')
  t.strictSame(await observer.expect('occupancy'), { type: 'occupancy', room: 'lobby', count: 6 }, 'above the limit, a count instead')
  t.strictSame(await sixth.expect('occupancy'), { type: 'occupancy', room: 'lobby', count: 6 }, 'to every member')
  sixth.close()
  t.strictSame(await observer.expect('occupancy'), { type: 'occupancy', room: 'lobby', count: 5 }, 'back at the limit: the count at once')
  t.match(await observer.expect('presence'), { event: 'leave', user: { id: 'sixth' }, count: 5 }, 'then the event')
  clients[0].close()
  t.match(await observer.expect('presence'), { event: 'leave', user: { id: 'u000' }, count: 4 }, 'events again below it')
  t.equal(await app.chat.occupancy('lobby'), 4)
})

t.test('a burst of joins above the limit: at most one occupancy per interval, the last one with the final count', async (t) => {
  const INTERVAL = 100
  const { url } = await server(t, { presenceEventsMax: 2, occupancyIntervalMs: INTERVAL })
  const observer = await join(url, '?u=observer')
  await join(url, '?u=second')
  await observer.expect('presence')
  const burst = ids(60)
  const start = performance.now()
  const joining = joinAll(url, burst)
  const counts: number[] = []
  const final = burst.length + 2
  while (counts.at(-1) !== final) {
    const frame = await observer.next('an occupancy frame')
    if (frame.type === 'presence') t.fail(`a presence event above the limit: ${JSON.stringify(frame)}`)
    if (frame.type === 'occupancy') counts.push(frame.count)
    if (counts.length > burst.length) break
  }
  const elapsed = performance.now() - start
  await joining
  t.equal(counts.at(-1), final, 'the last count is the final one')
  // Each write can wait up to PRESENCE_DELAY_MS (20) for the batch, so two
  // counts reach a client at least INTERVAL - 20 apart.
  const bound = Math.floor(elapsed / (INTERVAL - 20)) + 2
  t.ok(counts.length <= bound, `${counts.length} occupancy frames in ${Math.round(elapsed)} ms, at most ${bound}`)
  t.ok(counts.length < burst.length, `fewer than one per join (${counts.length} for ${burst.length})`)
  t.ok(counts.every((count, i) => i === 0 || count > counts[i - 1]), `only changes, rising: ${counts.join(' ')}`)
  observer.send({ type: 'members', room: 'lobby', limit: 1 })
  t.match(await answer(observer), { type: 'members', count: final })
})

t.test('bad members frames are answered with their codes', async (t) => {
  const { url } = await server(t)
  const alice = await join(url, '?u=alice')
  const cases: Array<[object, string]> = [
    [{ type: 'members', room: 'elsewhere', cid: 'a' }, 'not_in_room'],
    [{ type: 'members', room: 'no/slash', cid: 'b' }, 'invalid_room'],
    [{ type: 'members', cid: 'c' }, 'invalid_room'],
    [{ type: 'members', room: 'lobby', limit: 0, cid: 'd' }, 'invalid_message'],
    [{ type: 'members', room: 'lobby', limit: 1001, cid: 'e' }, 'invalid_message'],
    [{ type: 'members', room: 'lobby', limit: 2.5, cid: 'f' }, 'invalid_message'],
    [{ type: 'members', room: 'lobby', after: 7, cid: 'g' }, 'invalid_message'],
    [{ type: 'members', room: 'lobby', after: 'x'.repeat(257), cid: 'h' }, 'invalid_message']
  ]
  for (const [frame, code] of cases) {
    alice.send(frame)
    t.match(await answer(alice), { type: 'error', code, cid: (frame as { cid: string }).cid }, JSON.stringify(frame).slice(0, 80))
  }
  alice.send({ type: 'members', room: 'lobby', after: 'not-a-cursor', cid: 'i' })
  t.strictSame(await answer(alice), { type: 'members', room: 'lobby', users: [], count: 1, cid: 'i' }, 'a cursor never handed out is an empty last page')
  alice.send({ type: 'members', room: 'lobby' })
  t.strictSame(await answer(alice), { type: 'members', room: 'lobby', users: [{ id: 'alice', name: 'name-alice' }], count: 1 }, 'still served')
})
