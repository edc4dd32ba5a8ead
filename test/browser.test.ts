// The example page in a real Chromium, driven by playwright-core, against the
// example server on a free loopback port.
import { mkdir } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import { chromium } from 'playwright-core'
import type { Browser, Page } from 'playwright-core'
import t from 'tap'
import type { Test } from 'tap'
import { buildServer } from '../example/server.js'
import { MemoryStore } from '../lib/stores/memory-store.js'

const ARTIFACTS = new URL('./artifacts', import.meta.url).pathname
const WAIT = { timeout: 10_000 }

let browser: Browser
// Dialogs and uncaught page errors; each test ends by checking there were none.
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

  async pass (name: string): Promise<void> {
    if (this.#held.has(name)) await this.#opened.get(name)
  }
}

interface Server { app: FastifyInstance, base: string, port: number }

async function start (t: Test, store: MemoryStore, gate: Gate, port = 0): Promise<Server> {
  const app = await buildServer({
    chat: {
      store,
      identify: async (request) => {
        await gate.pass(String((request.query as { name?: string }).name))
        return {}
      }
    }
  })
  t.teardown(() => app.close())
  await app.listen({ port, host: '127.0.0.1' })
  const { port: actual } = app.server.address() as { port: number }
  return { app, base: `http://127.0.0.1:${actual}`, port: actual }
}

async function open (t: Test, url: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } })
  t.teardown(() => page.close())
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

/** The message texts the page shows, in order. */
async function texts (page: Page): Promise<string[]> {
  return await page.$$eval('#messages .text', (nodes) => nodes.map((n) => n.textContent ?? ''))
}

async function users (page: Page): Promise<string[]> {
  return await page.$$eval('#users li', (nodes) => nodes.map((n) => n.textContent ?? '').sort())
}

async function waitForText (page: Page, text: string): Promise<void> {
  await page.waitForFunction((x) => [...document.querySelectorAll('#messages .text')].some((n) => n.textContent === x), text, WAIT)
}

async function waitForUsers (page: Page, names: string[]): Promise<void> {
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('#users li')].map((n) => n.textContent).sort()
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
  const gate = new Gate()
  const { app, base } = await start(t, new MemoryStore(), gate)
  const alice = await open(t, `${base}/?name=alice`)
  const bob = await open(t, `${base}/?name=bob`)
  await say(bob, 'before')
  await waitForText(alice, 'before')

  gate.hold('alice')
  for (const socket of app.websocketServer.clients) socket.terminate()
  await status(alice, 'reconnecting')
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
