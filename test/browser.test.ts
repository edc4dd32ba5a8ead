// The example page in a real Chromium, driven by playwright-core, against the
// example server on a free loopback port.
import { mkdir } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import { chromium } from 'playwright-core'
import type { Browser, Page } from 'playwright-core'
import t from 'tap'
import type { Test } from 'tap'
import { buildServer, keyedIdentify } from '../example/server.js'
import type { FastifyChatOptions } from '../index.js'
import { MemoryStore } from '../lib/stores/memory-store.js'
import { join } from './helpers/chat.js'
import type { Client } from './helpers/chat.js'

// The trailing slash matters: file names are appended to it.
const ARTIFACTS = new URL('./artifacts/', import.meta.url).pathname
const WAIT = { timeout: 15_000 }
// A real browser: about a minute on two idle cores, more when they are busy.
t.setTimeout(300_000)

let browser: Browser
// Dialogs, uncaught page errors and failed requests (a missing favicon.ico,
// say); each test ends by checking there were none.
const problems: string[] = []
t.before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run']
  })
})
t.teardown(() => browser?.close())

/** Holds the named user's connections at the door until released, to make them miss things. */
class Gate {
  #held = new Set<string>()
  #waiting = new Map<string, () => void>()
  #opened = new Map<string, Promise<void>>()

  hold (name: string): void {
    this.#held.add(name)
    this.#opened.set(name, new Promise((resolve) => this.#waiting.set(name, resolve)))
  }

  release (name: string): void {
    this.#held.delete(name)
    this.#waiting.get(name)?.()
  }

  /** Lets everyone through, so a failed test cannot leave an upgrade hanging on close. */
  releaseAll (): void {
    for (const name of this.#held) this.release(name)
  }

  async pass (name: string): Promise<void> {
    if (this.#held.has(name)) await this.#opened.get(name)
  }
}

interface Server { app: FastifyInstance, base: string, port: number }

// The example's staff token in these tests: a page opened with ?staff=<it> is staff.
const STAFF_TOKEN = 'browser-staff-token'

async function start (t: Test, store: MemoryStore, gate: Gate, port = 0, chat: FastifyChatOptions = {}): Promise<Server> {
  // The example's own identify, behind the gate.
  const identify = keyedIdentify(STAFF_TOKEN)
  const app = await buildServer({
    env: { STAFF_TOKEN },
    chat: {
      ...chat,
      store,
      identify: async (request) => {
        await gate.pass(String((request.query as { name?: string }).name))
        return identify(request)
      }
    }
  })
  t.teardown(async () => {
    gate.releaseAll()
    await app.close()
  })
  await app.listen({ port, host: '127.0.0.1' })
  const { port: actual } = app.server.address() as { port: number }
  return { app, base: `http://127.0.0.1:${actual}`, port: actual }
}

async function open (t: Test, url: string): Promise<Page> {
  // One locale, so the tests can read the dates the page shows.
  const page = await browser.newPage({ viewport: { width: 900, height: 640 }, locale: 'en-US' })
  t.teardown(() => page.close())
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`)
  })
  page.on('dialog', (dialog) => {
    problems.push(`dialog: ${dialog.message()}`)
    dialog.dismiss().catch(() => {})
  })
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  await page.goto(url)
  await status(page, 'open')
  return page
}

async function status (page: Page, expected: string): Promise<void> {
  await page.waitForFunction((s) => document.getElementById('status')?.textContent === s, expected, WAIT)
}

/** The delivered messages' texts the page shows, in order (not those still sending). */
async function texts (page: Page): Promise<string[]> {
  return await page.$$eval('#messages .message:not(.pending) .text', (nodes) => nodes.map((n) => n.textContent ?? ''))
}

/** The names in the online list, sorted. */
async function users (page: Page): Promise<string[]> {
  return await page.$$eval('#users .name', (nodes) => nodes.map((n) => n.textContent ?? '').sort())
}

/** Waits until the page shows `text` as a delivered message. */
async function waitForText (page: Page, text: string): Promise<void> {
  await page.waitForFunction((x) => [...document.querySelectorAll('#messages .message:not(.pending) .text')].some((n) => n.textContent === x), text, WAIT)
}

async function waitForNotice (page: Page, pattern: RegExp): Promise<string> {
  const notice = await page.waitForFunction((source) => {
    const node = document.getElementById('notice')
    return node !== null && !node.hidden && new RegExp(source).test(node.textContent ?? '') && node.textContent
  }, pattern.source, WAIT)
  return await notice.jsonValue() as string
}

async function waitForCounter (page: Page, text: string): Promise<void> {
  await page.waitForFunction((x) => {
    const counter = document.getElementById('counter')
    return counter !== null && !counter.hidden && counter.textContent === x
  }, text, WAIT)
}

/** The room buttons, in order, and the room shown. */
async function roomsShown (page: Page): Promise<{ rooms: string[], current: string | null }> {
  return await page.evaluate(() => ({
    rooms: [...document.querySelectorAll('#room-list .room')].map((n) => n.firstChild?.textContent ?? ''),
    current: document.getElementById('room-title')?.textContent ?? null
  }))
}

async function waitForUsers (page: Page, names: string[]): Promise<void> {
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('#users .name')].map((n) => n.textContent).sort()
    return JSON.stringify(got) === JSON.stringify(want)
  }, [...names].sort(), WAIT)
}

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text-input', text)
  await page.press('#text-input', 'Enter')
}

/** Asserts that every page shows each of `expected` exactly once; returns the first page's texts. */
async function shownOnce (t: Test, pages: Record<string, Page>, expected: string[]): Promise<string[]> {
  const shown: string[][] = []
  for (const [name, page] of Object.entries(pages)) {
    const list = await texts(page)
    shown.push(list)
    for (const text of expected) t.equal(list.filter((x) => x === text).length, 1, `${name} shows "${text}" once`)
  }
  return shown[0] ?? []
}

/**
 * Alice and Bob chatting, then every socket dropped and Alice held back from
 * reconnecting (until `gate.release('alice')`): she is left reconnecting.
 */
async function aliceCutOff (t: Test): Promise<{ gate: Gate, alice: Page, bob: Page }> {
  const gate = new Gate()
  const { app, base } = await start(t, new MemoryStore(), gate)
  const alice = await open(t, `${base}/?name=alice`)
  const bob = await open(t, `${base}/?name=bob`)
  await say(bob, 'before')
  await waitForText(alice, 'before')
  gate.hold('alice')
  for (const socket of app.websocketServer.clients) socket.terminate()
  await status(alice, 'reconnecting')
  return { gate, alice, bob }
}

t.test('two pages chat both ways; a page in another room sees none of it', async (t) => {
  const { app, base } = await start(t, new MemoryStore(), new Gate())
  const alice = await open(t, `${base}/?name=alice`)
  const bob = await open(t, `${base}/?name=bob`)
  await waitForUsers(alice, ['alice', 'bob'])
  const carol = await open(t, `${base}/?name=carol&room=elsewhere`)
  await waitForUsers(carol, ['carol'])

  await say(alice, 'hello from alice')
  await waitForText(bob, 'hello from alice')
  await say(bob, 'hi alice')
  await waitForText(alice, 'hi alice')
  await waitForText(bob, 'hi alice')
  t.same(await texts(alice), ['hello from alice', 'hi alice'])
  t.same(await texts(bob), ['hello from alice', 'hi alice'])
  t.same(await bob.$$eval('#messages .from', (nodes) => nodes.map((n) => n.textContent)), ['alice', 'bob'], 'sender shown')
  t.equal(await bob.$$eval('#messages time', (nodes) => nodes.length), 2, 'time shown')

  // A marker in carol's room: what she shows before it is all she received.
  await app.chat.broadcast('elsewhere', 'marker')
  await waitForText(carol, 'marker')
  t.same(await texts(carol), ['marker'], 'nothing from the lobby reached the other room')
  t.same(await users(carol), ['carol'])

  await mkdir(ARTIFACTS, { recursive: true })
  await alice.screenshot({ path: `${ARTIFACTS}chat.png`, fullPage: true })
  await alice.setViewportSize({ width: 390, height: 740 })
  await alice.screenshot({ path: `${ARTIFACTS}chat-phone.png`, fullPage: true })
  const overflow = await alice.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  t.ok(overflow <= 0, 'no sideways scrolling on a phone-sized screen')

  // Inline, so no browser asks for /favicon.ico (headless Chromium never does, hence this check).
  t.match(await alice.$eval('link[rel~="icon"]', (link) => (link as HTMLLinkElement).href), /^data:image\/svg\+xml,/, 'an inline icon')

  await bob.close()
  await waitForUsers(alice, ['alice'])
  t.pass('the online list drops bob when he leaves')
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('a message is text, never markup', async (t) => {
  const { base } = await start(t, new MemoryStore(), new Gate())
  const alice = await open(t, `${base}/?name=alice`)
  const bob = await open(t, `${base}/?name=${encodeURIComponent('<b>bob</b>')}`)
  const attack = '<img src=x onerror=alert(1)>'
  await say(alice, attack)
  await waitForText(bob, attack)
  t.same(await texts(bob), [attack], 'shown literally')
  t.equal(await bob.$$eval('#messages img', (nodes) => nodes.length), 0, 'no element was created from it')
  await waitForUsers(alice, ['alice', '<b>bob</b>'])
  t.equal(await alice.$$eval('#users b', (nodes) => nodes.length), 0, 'names are text too')
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('every socket dropped: reconnecting, then open; nothing lost, nothing twice', async (t) => {
  const { gate, alice, bob } = await aliceCutOff(t)
  await status(bob, 'open')
  await say(bob, 'while alice was away')
  await waitForText(bob, 'while alice was away')
  t.equal(await alice.isDisabled('#text-input'), false, 'alice can type while reconnecting')
  await say(alice, 'typed while away')

  gate.release('alice')
  await status(alice, 'open')
  await waitForText(alice, 'while alice was away')
  await waitForText(bob, 'typed while away')
  await waitForText(alice, 'typed while away')
  await say(bob, 'after')
  await waitForText(alice, 'after')
  await waitForText(bob, 'after')
  const seenByAlice = await shownOnce(t, { alice, bob }, ['before', 'while alice was away', 'typed while away', 'after'])
  t.same(seenByAlice.indexOf('while alice was away') < seenByAlice.indexOf('typed while away'), true, 'in order')
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('the server restarts with the same store: the pages resume where they were', async (t) => {
  const store = new MemoryStore()
  const gate = new Gate()
  const first = await start(t, store, gate)
  const alice = await open(t, `${first.base}/?name=alice`)
  const bob = await open(t, `${first.base}/?name=bob`)
  await say(alice, 'before the restart')
  await waitForText(bob, 'before the restart')

  await first.app.close()
  await status(alice, 'reconnecting')
  await status(bob, 'reconnecting')
  await say(alice, 'typed while down')

  gate.hold('alice')
  await start(t, store, gate, first.port)
  await status(bob, 'open')
  await say(bob, 'right after the restart')
  await waitForText(bob, 'right after the restart')
  gate.release('alice')
  await status(alice, 'open')
  await waitForText(alice, 'right after the restart')
  await waitForText(bob, 'typed while down')
  await waitForText(alice, 'typed while down')

  await shownOnce(t, { alice, bob }, ['before the restart', 'typed while down', 'right after the restart'])
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('a message over maxMessageLength keeps its text; the counter says by how much', async (t) => {
  // The page learns the limit from the server's own options.
  const { base } = await start(t, new MemoryStore(), new Gate(), 0, { maxMessageLength: 20 })
  const alice = await open(t, `${base}/?name=alice`)
  t.equal(await alice.isHidden('#counter'), true, 'no counter far from the limit')

  // Counted in characters like the server counts them: an emoji is one.
  await alice.fill('#text-input', '😀'.repeat(17))
  await waitForCounter(alice, '3 characters left')

  const long = 'this is far too long to send'
  await alice.fill('#text-input', long)
  await waitForCounter(alice, '8 characters too many (limit 20)')
  t.equal(await alice.isDisabled('#send-form button'), true, 'send is off')
  t.equal(await alice.getAttribute('#text-input', 'aria-invalid'), 'true')
  await mkdir(ARTIFACTS, { recursive: true })
  await alice.screenshot({ path: `${ARTIFACTS}too-long.png` })
  await alice.press('#text-input', 'Enter')
  t.equal(await alice.inputValue('#text-input'), long, 'Enter keeps the text')

  await say(alice, 'short enough')
  await waitForText(alice, 'short enough')
  t.same(await texts(alice), ['short enough'], 'only the short one was sent')
  t.equal(await alice.inputValue('#text-input'), '')
  t.equal(await alice.isHidden('#counter'), true)
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('a message the server refuses comes back into the box', async (t) => {
  // Typing each message sends a typing signal first (one's own message lets
  // the next keystroke signal at once), and signals count against the limit
  // too: five frames pass, the sixth, "three", is refused.
  const { base } = await start(t, new MemoryStore(), new Gate(), 0, { rateLimit: { messages: 1, intervalMs: 600_000, burst: 5 } })
  const alice = await open(t, `${base}/?name=alice`)
  await say(alice, 'one')
  await waitForText(alice, 'one')
  await say(alice, 'two')
  await waitForText(alice, 'two')
  await say(alice, 'three')
  t.match(await waitForNotice(alice, /not sent/), /slow down/)
  t.equal(await alice.inputValue('#text-input'), 'three', 'the refused text is back')
  t.equal(await alice.$$eval('#messages .pending', (nodes) => nodes.length), 0, 'and no longer shown as sending')
  t.same(await texts(alice), ['one', 'two'])
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('a message typed while offline shows as sending, then as delivered, once', async (t) => {
  const { gate, alice, bob } = await aliceCutOff(t)
  await say(alice, 'queued')
  await alice.waitForFunction(() => {
    const pending = document.querySelector('#messages .message.pending')
    return pending?.querySelector('.text')?.textContent === 'queued' && pending.querySelector('.sending')?.textContent === 'sending…'
  }, undefined, WAIT)
  t.same(await texts(alice), ['before'], 'shown, but not as delivered')
  await mkdir(ARTIFACTS, { recursive: true })
  await alice.screenshot({ path: `${ARTIFACTS}pending.png` })

  gate.release('alice')
  await waitForText(alice, 'queued')
  t.equal(await alice.$$eval('#messages .pending', (nodes) => nodes.length), 0, 'the pending entry is gone')
  t.same(await alice.$$eval('#messages .text', (nodes) => nodes.map((n) => n.textContent)), ['before', 'queued'], 'replaced, not added')
  await waitForText(bob, 'queued')
  t.same(await texts(bob), ['before', 'queued'])
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('a reload is the same user, in the same rooms', async (t) => {
  // A long grace period: a second id on reload would show twice for a minute, not flicker.
  const { base } = await start(t, new MemoryStore(), new Gate(), 0, { presenceGraceMs: 60_000 })
  const bob = await open(t, `${base}/?name=bob`)
  const alice = await open(t, `${base}/?name=alice`)
  await waitForUsers(bob, ['alice', 'bob'])
  await alice.fill('#room-input', 'news')
  await alice.press('#room-input', 'Enter')
  await alice.waitForFunction(() => document.getElementById('room-title')?.textContent === 'news', undefined, WAIT)
  await alice.click('#room-list .room >> text=lobby')
  t.same(await roomsShown(alice), { rooms: ['lobby', 'news'], current: 'lobby' })

  // Bob's page records the most alice entries its online list ever held.
  await bob.evaluate(() => {
    const list = document.getElementById('users') as HTMLElement
    const count = (): number => [...list.children].filter((n) => n.textContent === 'alice').length
    const seen = window as unknown as { mostAlices: number }
    seen.mostAlices = count()
    new MutationObserver(() => { seen.mostAlices = Math.max(seen.mostAlices, count()) }).observe(list, { childList: true, subtree: true })
  })

  await alice.reload()
  await status(alice, 'open')
  await alice.waitForFunction(() => document.querySelectorAll('#room-list .room').length === 2, undefined, WAIT)
  t.same(await roomsShown(alice), { rooms: ['lobby', 'news'], current: 'lobby' }, 'both rooms, the same one shown')
  await waitForUsers(alice, ['alice', 'bob'])

  // Presence reaches bob before a message alice sends after her reload.
  await say(alice, 'back')
  await waitForText(bob, 'back')
  t.equal(await bob.evaluate(() => (window as unknown as { mostAlices: number }).mostAlices), 1, 'bob never saw alice twice')
  t.same(await users(bob), ['alice', 'bob'])
  t.same(await alice.$$eval('#messages .mine .text', (nodes) => nodes.map((n) => n.textContent)), ['back'], 'her message is hers')
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('times carry the date when the message is not from today', async (t) => {
  const store = new MemoryStore()
  const from = { id: 'c1', name: 'carol' }
  await store.append({ room: 'lobby', ts: Date.UTC(2020, 2, 4, 12), from, text: 'in 2020' })
  await store.append({ room: 'lobby', ts: Date.now() - 3 * 24 * 3600_000, from, text: 'three days ago' })
  const { base } = await start(t, store, new Gate())
  const alice = await open(t, `${base}/?name=alice`)
  await say(alice, 'today')
  await waitForText(alice, 'today')
  const [old, recent, today] = await alice.$$eval('#messages .message time', (nodes) => nodes.map((n) => n.textContent ?? ''))
  t.match(old, /^Mar [3-5], 2020, \d\d:\d\d [AP]M$/, 'another year: date and year')
  t.match(recent, /^[A-Z][a-z]{2} \d{1,2}(, \d{4})?, \d\d:\d\d [AP]M$/, 'another day: the date')
  t.match(today, /^\d\d:\d\d [AP]M$/, 'today: the time alone')
  await mkdir(ARTIFACTS, { recursive: true })
  await alice.screenshot({ path: `${ARTIFACTS}dates.png` })
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('a blank name is refused with a notice', async (t) => {
  const { base } = await start(t, new MemoryStore(), new Gate())
  const alice = await open(t, `${base}/?name=alice`)
  for (const blank of ['   ', '']) {
    await alice.fill('#name-input', blank)
    await alice.evaluate(() => { (document.getElementById('notice') as HTMLElement).hidden = true })
    await alice.press('#name-input', 'Enter')
    t.match(await waitForNotice(alice, /name/), /cannot be blank/, JSON.stringify(blank))
    t.equal(await alice.getAttribute('#name-input', 'aria-invalid'), 'true')
  }
  await alice.fill('#name-input', 'alicia')
  await alice.press('#name-input', 'Enter')
  await waitForUsers(alice, ['alicia'])
  t.equal(await alice.getAttribute('#name-input', 'aria-invalid'), 'false')
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

/** The entry of the online list for `name`. */
function userEntry (page: Page, name: string) {
  return page.locator('#users li', { has: page.locator('.name', { hasText: new RegExp(`^${name}$`) }) })
}

/** Counts the chat upgrades per `?name=`, to tell whether a page came back. */
function countUpgrades (t: Test, app: FastifyInstance): Map<string, number> {
  const counts = new Map<string, number>()
  const listener = (request: { url?: string }): void => {
    const name = new URL(request.url ?? '/', 'http://x').searchParams.get('name') ?? ''
    counts.set(name, (counts.get(name) ?? 0) + 1)
  }
  app.server.on('upgrade', listener)
  t.teardown(() => { app.server.off('upgrade', listener) })
  return counts
}

t.test('a staff page removes a user from a room and kicks another; the kicked page says why and stays closed', async (t) => {
  const { app, base } = await start(t, new MemoryStore(), new Gate())
  const upgrades = countUpgrades(t, app)
  const boss = await open(t, `${base}/?name=boss&staff=${encodeURIComponent(STAFF_TOKEN)}`)
  const bob = await open(t, `${base}/?name=bob`)
  const carol = await open(t, `${base}/?name=carol`)
  await waitForUsers(boss, ['boss', 'bob', 'carol'])

  // The tools show once the server has taken the token, for others only.
  await boss.locator('#staff-tools').waitFor({ state: 'visible', ...WAIT })
  await userEntry(boss, 'bob').locator('.remove').waitFor(WAIT)
  t.equal(await userEntry(boss, 'boss').locator('button').count(), 0, 'no remove or kick, nor a direct conversation, with oneself')
  t.equal(await userEntry(boss, 'carol').locator('.kick').count(), 1)
  await waitForUsers(bob, ['boss', 'bob', 'carol'])
  t.equal(await bob.locator('#users .remove, #users .kick').count(), 0, 'a page without the token has no moderation tools')
  t.equal(await bob.isHidden('#staff-tools'), true)

  await boss.fill('#reason-input', 'off topic')
  await userEntry(boss, 'bob').locator('.remove').click()
  t.match(await waitForNotice(bob, /removed/), /^You were removed from lobby: off topic$/)
  await bob.waitForFunction(() => document.querySelectorAll('#room-list .room').length === 0, undefined, WAIT)
  t.same(await roomsShown(bob), { rooms: [], current: 'No room' }, 'the room is dropped')
  await waitForUsers(boss, ['boss', 'carol'])
  await waitForUsers(carol, ['boss', 'carol'])
  await status(bob, 'open')

  await boss.fill('#reason-input', 'spamming')
  await userEntry(boss, 'carol').locator('.kick').click()
  t.match(await waitForNotice(carol, /disconnected/), /^You were disconnected by the server \(spamming\)\. Reload the page to come back\.$/)
  await status(carol, 'closed')
  t.equal(await carol.isDisabled('#text-input'), true, 'nothing can be typed any more')
  t.same(await users(carol), [], 'nor does it claim to know who is online')
  // Her leave reaches the others only after the presence grace period (a
  // second), far past the first retry a reconnecting client makes (at most 250 ms).
  await waitForUsers(boss, ['boss'])
  // A later event: a new page joins, and the staff page sees it.
  await open(t, `${base}/?name=dave`)
  await waitForUsers(boss, ['boss', 'dave'])
  t.equal(upgrades.get('carol'), 1, 'the kicked page never opened another socket')
  t.equal(app.chat.size, 3, 'boss, bob (in no room) and dave are connected')
  t.equal(await carol.textContent('#status'), 'closed')
  t.equal(await carol.isVisible('#notice'), true, 'the reason stays shown')

  await mkdir(ARTIFACTS, { recursive: true })
  await boss.screenshot({ path: `${ARTIFACTS}staff.png` })
  await carol.screenshot({ path: `${ARTIFACTS}kicked.png` })
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

t.test('two pages hold a direct conversation by clicking names; a third cannot open it', async (t) => {
  const { app, base } = await start(t, new MemoryStore(), new Gate())
  const alice = await open(t, `${base}/?name=alice`)
  const bob = await open(t, `${base}/?name=bob`)
  const carol = await open(t, `${base}/?name=carol`)
  await waitForUsers(alice, ['alice', 'bob', 'carol'])

  await alice.click('#users .name >> text=bob')
  await alice.waitForFunction(() => document.getElementById('room-title')?.textContent === 'bob', undefined, WAIT)
  t.same(await roomsShown(alice), { rooms: ['lobby', 'bob'], current: 'bob' }, 'listed under the other user\'s name')
  const room = await alice.getAttribute('#room-list .room.direct', 'data-room') as string
  t.match(room, /^dm-[A-Za-z0-9_-]+$/, 'a direct room underneath')
  t.same(await users(alice), ['alice'], 'bob is not in it until someone writes')

  // Bob is brought in by alice's first message, and sees it in a room named after her.
  await say(alice, 'psst, bob')
  await waitForText(alice, 'psst, bob')
  await bob.waitForFunction(() => document.querySelectorAll('#room-list .room').length === 2, undefined, WAIT)
  t.same(await roomsShown(bob), { rooms: ['lobby', 'alice'], current: 'lobby' }, 'it appears without taking bob away from the lobby')
  t.equal(await bob.textContent('#room-list .room.direct .badge'), '1', 'one unread message')
  await bob.click('#room-list .room.direct')
  await waitForText(bob, 'psst, bob')
  await say(bob, 'hi alice')
  await waitForText(alice, 'hi alice')
  await waitForUsers(alice, ['alice', 'bob'])
  t.same(await texts(bob), ['psst, bob', 'hi alice'])

  // Carol's page: the room's name is refused, through the page and through a raw socket as carol.
  await carol.fill('#room-input', room)
  await carol.press('#room-input', 'Enter')
  t.equal(await waitForNotice(carol, /may not/), `Sorry, you may not enter ${room}.`)
  t.same(await roomsShown(carol), { rooms: ['lobby'], current: 'lobby' })
  const answer = await carol.evaluate(async (room) => await new Promise<unknown[]>((resolve, reject) => {
    // Carol's own id: the user key her browser keeps.
    const key = localStorage.getItem('fastify-chat.key') ?? ''
    const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/chat?name=carol&key=${encodeURIComponent(key)}`)
    const frames: unknown[] = []
    const timer = setTimeout(() => reject(new Error(`no answer: ${JSON.stringify(frames)}`)), 10_000)
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data as string) as { type: string, room?: string }
      frames.push(frame)
      if (frame.type === 'welcome') ws.send(JSON.stringify({ type: 'join', room }))
      if (frame.type === 'error' || (frame.type === 'joined' && frame.room === room)) {
        clearTimeout(timer)
        ws.close()
        resolve(frames)
      }
    }
  }), room)
  t.equal(answer.length, 3, 'welcome, the lobby, the refusal: nothing of the room')
  t.match(answer, [{ type: 'welcome', name: 'carol' }, { type: 'joined', room: 'lobby' }, { type: 'error', code: 'forbidden', room }])
  t.equal((answer[0] as { id: string }).id, await carol.getAttribute('#users li.me', 'data-id'), 'the raw socket is carol herself')
  t.same((await app.chat.presence(room)).users.map((user) => user.name).sort(), ['alice', 'bob'], 'only the two are in it')

  // Her own conversation with alice is another room, with none of theirs.
  await carol.click('#users .name >> text=alice')
  await carol.waitForFunction(() => document.getElementById('room-title')?.textContent === 'alice', undefined, WAIT)
  t.not(await carol.getAttribute('#room-list .room.direct', 'data-room'), room)
  t.same(await texts(carol), [])

  // A reload reopens the conversation by naming bob.
  await alice.reload()
  await status(alice, 'open')
  await alice.waitForFunction(() => document.querySelectorAll('#room-list .room').length === 2, undefined, WAIT)
  t.same(await roomsShown(alice), { rooms: ['lobby', 'bob'], current: 'bob' })
  await waitForText(alice, 'hi alice')
  t.same(await texts(alice), ['psst, bob', 'hi alice'])

  await mkdir(ARTIFACTS, { recursive: true })
  await bob.screenshot({ path: `${ARTIFACTS}direct.png` })
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})

async function waitForOnline (page: Page, text: string): Promise<void> {
  await page.waitForFunction((x) => document.getElementById('online-title')?.textContent === x, text, WAIT)
}

t.test('a big room: "N online" from the count, and a member list paged with "Show more"', async (t) => {
  const { base } = await start(t, new MemoryStore(), new Gate(), 0, { presenceListMax: 2, presenceEventsMax: 5, occupancyIntervalMs: 50 })
  const url = base.replace(/^http/, 'ws')
  const others: Client[] = []
  for (const name of ['u1', 'u2', 'u3', 'u4']) others.push(await join(url, `?name=${name}`))
  t.teardown(() => { for (const other of others) other.close() })
  const alice = await open(t, `${base}/?name=alice`)
  await waitForOnline(alice, '5 online')
  t.equal((await users(alice)).length, 2, 'the joined listed presenceListMax users')
  const more = alice.locator('#more-users')
  t.equal(await more.textContent(), 'Show more (2 of 5 shown)')

  await more.click()
  await alice.waitForFunction(() => document.querySelectorAll('#users .name').length === 4, undefined, WAIT)
  await alice.waitForFunction(() => document.getElementById('more-users')?.textContent === 'Show more (4 of 5 shown)', undefined, WAIT)
  await more.click()
  await waitForUsers(alice, ['alice', 'u1', 'u2', 'u3', 'u4'])
  await more.waitFor({ state: 'hidden', ...WAIT })
  t.pass('paged to the end: everyone listed once, and no more button')

  // Over presenceEventsMax the room sends counts: the number moves, the list does not.
  const u5 = await join(url, '?name=u5')
  await waitForOnline(alice, '6 online')
  t.same(await users(alice), ['alice', 'u1', 'u2', 'u3', 'u4'])
  await mkdir(ARTIFACTS, { recursive: true })
  await alice.screenshot({ path: `${ARTIFACTS}online.png` })
  t.equal(await more.textContent(), 'Show more (5 of 6 shown)', 'more is back: someone is not listed')
  await more.click()
  await waitForUsers(alice, ['alice', 'u1', 'u2', 'u3', 'u4', 'u5'])

  // Back to the limit, per-user events again.
  u5.close()
  await waitForOnline(alice, '5 online')
  await waitForUsers(alice, ['alice', 'u1', 'u2', 'u3', 'u4'])
  others[0]?.close()
  await waitForOnline(alice, '4 online')
  await waitForUsers(alice, ['alice', 'u2', 'u3', 'u4'])
  t.same(problems.splice(0), [], 'no dialog opened and no page error')
})
