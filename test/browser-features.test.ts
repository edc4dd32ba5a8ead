// The example page's typing line, replies, edits, deletes, scroll-back and
// unread badges, in a real Chromium against the example server. Each user is
// a browser context of their own; a second tab of one user shares its context.
import { mkdir } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import t from 'tap'
import type { Test } from 'tap'
import { buildServer } from '../example/server.js'
import { MemoryStore } from '../lib/stores/memory-store.js'
import { launchChromium, newContext, Problems, say, status, texts, WAIT, waitForText, waitForUsers } from './helpers/browser.js'

// The trailing slash matters: file names are appended to it.
const ARTIFACTS = new URL('./artifacts/', import.meta.url).pathname
// A real browser: about a minute on two idle cores, more when they are busy.
t.setTimeout(300_000)

let browser: Browser
const problems = new Problems()
t.before(async () => { browser = await launchChromium() })
t.teardown(() => browser?.close())

/** The example on a free loopback port, its own identify and a store holding `size` messages a room. */
async function start (t: Test, size = 100): Promise<{ app: FastifyInstance, base: string }> {
  // No env: no staff token, no Redis, whatever the test process has set.
  const app = await buildServer({ env: {}, store: new MemoryStore({ size }) })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, base: `http://127.0.0.1:${port}` }
}

/** One user's browser. */
async function user (t: Test): Promise<BrowserContext> {
  const context = await newContext(browser)
  t.teardown(() => context.close())
  return context
}

/** A tab of `context` at `url`, once its socket is open. */
async function tab (context: BrowserContext, url: string): Promise<Page> {
  const page = problems.watch(await context.newPage())
  await page.goto(url)
  await status(page, 'open')
  return page
}

/** The delivered message that shows `text`. */
function messageWith (page: Page, text: string) {
  return page.locator('#messages .message:not(.pending)', { has: page.locator('.text', { hasText: new RegExp(`^${text}$`) }) })
}

async function waitForTyping (page: Page, text: string): Promise<void> {
  await page.waitForFunction((x) => document.getElementById('typing')?.textContent === x, text, WAIT)
}

/** The unread badge of `room` in the room list; '' when it has none. */
async function badge (page: Page, room: string): Promise<string> {
  return await page.$eval(`#room-list .room[data-room="${room}"]`, (node) => node.querySelector('.badge')?.textContent ?? '')
}

async function waitForBadge (page: Page, room: string, text: string): Promise<void> {
  await page.waitForFunction(([room, text]) => {
    const button = document.querySelector(`#room-list .room[data-room="${room}"]`)
    return button !== null && (button.querySelector('.badge')?.textContent ?? '') === text
  }, [room, text], WAIT)
}

t.test('typing, a reply that quotes, an edit and a delete, as another user sees them', async (t) => {
  const { app, base } = await start(t)
  const alice = await tab(await user(t), `${base}/?name=alice`)
  const bob = await tab(await user(t), `${base}/?name=bob`)
  const carol = await tab(await user(t), `${base}/?name=carol`)
  await waitForUsers(alice, ['alice', 'bob', 'carol'])
  await waitForUsers(bob, ['alice', 'bob', 'carol'])

  await alice.fill('#text-input', 'hel')
  await waitForTyping(bob, 'alice is typing…')
  await waitForTyping(carol, 'alice is typing…')
  t.equal(await alice.textContent('#typing'), '', 'nobody else types: alice sees no line')
  await bob.fill('#text-input', 'wait')
  await waitForTyping(carol, 'alice and bob are typing…')
  await bob.fill('#text-input', '')

  await say(alice, 'hello')
  await waitForText(bob, 'hello')
  // Her message ends her typing at once, not after its five seconds.
  await waitForTyping(bob, '')
  await waitForTyping(carol, 'bob is typing…')

  // Bob replies to it: the message carries meta.replyTo, and both pages quote it.
  await messageWith(bob, 'hello').locator('.reply').click()
  t.match(await bob.textContent('#composing'), /Replying to alice: hello/)
  await say(bob, 'hi back')
  await waitForText(alice, 'hi back')
  t.equal(await bob.isHidden('#composing'), true, 'the reply is sent: back to a new message')
  const [original, reply] = await app.chat.history('lobby')
  t.match(reply, { text: 'hi back', meta: { replyTo: original?.offset } }, 'the reply names the offset of the message it quotes')
  for (const page of [alice, bob]) {
    const quote = messageWith(page, 'hi back').locator('.quote')
    t.equal(await quote.locator('.quote-from').textContent(), 'alice')
    t.equal(await quote.locator('.quote-text').textContent(), 'hello')
  }

  // Only one's own messages have edit and delete.
  t.equal(await messageWith(bob, 'hello').locator('.edit, .delete').count(), 0, 'none on another\'s message')
  t.equal(await messageWith(bob, 'hi back').locator('.edit, .delete').count(), 2, 'both on one\'s own')

  await messageWith(alice, 'hello').locator('.edit').click()
  t.equal(await alice.inputValue('#text-input'), 'hello', 'the text to change is in the box')
  await say(alice, 'hello, edited')
  await waitForText(bob, 'hello, edited')
  t.equal(await messageWith(bob, 'hello, edited').locator('.edited').textContent(), '(edited)')
  await bob.waitForFunction(() => document.querySelector('#messages .quote .quote-text')?.textContent === 'hello, edited', undefined, WAIT)
  t.pass('the quote follows the edit')
  await bob.fill('#text-input', 'typing on')
  await waitForTyping(alice, 'bob is typing…')
  await mkdir(ARTIFACTS, { recursive: true })
  await alice.screenshot({ path: `${ARTIFACTS}features.png` })
  await bob.fill('#text-input', '')
  t.same(await texts(bob), ['hello, edited', 'hi back'], 'changed in place, nothing added')

  await messageWith(alice, 'hello, edited').locator('.delete').click()
  await waitForText(bob, 'message deleted')
  t.same(await texts(bob), ['message deleted', 'hi back'])
  t.equal(await bob.locator('#messages .message.deleted .reply, #messages .message.deleted .edited').count(), 0, 'no reply to it, and no "(edited)"')
  await bob.waitForFunction(() => document.querySelector('#messages .quote .quote-text')?.textContent === 'message deleted', undefined, WAIT)
  t.pass('the quote says it is gone')
  await waitForText(carol, 'message deleted')

  // What bob's page shows is what a page opened now builds from the replay.
  const dave = await tab(await user(t), `${base}/?name=dave`)
  await waitForText(dave, 'hi back')
  t.same(await texts(dave), ['message deleted', 'hi back'])
  t.same(problems.take(), [], 'no dialog opened and no page error')
})

t.test('scrolling to the top loads older messages, above, where they were', async (t) => {
  // More than the joined replays (historySize, 100).
  const { app, base } = await start(t, 1000)
  for (let i = 1; i <= 130; i++) await app.chat.broadcast('lobby', `old ${i}`)
  await app.chat.broadcast('lobby', 'a reply to the first', { meta: { replyTo: 1 } })
  const alice = await tab(await user(t), `${base}/?name=alice`)
  await waitForText(alice, 'a reply to the first')
  const shown = await texts(alice)
  t.equal(shown.length, 100, 'the replay')
  t.equal(shown[0], 'old 32')
  t.equal(await messageWith(alice, 'a reply to the first').locator('.quote-text').textContent(), 'a message not loaded')

  // Scrolled to the top: where the oldest shown sits then is where it must stay.
  const before = await alice.$eval('#messages', (list) => {
    list.scrollTop = 0
    const first = list.querySelector('.message') as HTMLElement
    return { offset: first.dataset.offset, top: first.getBoundingClientRect().top }
  })
  await waitForText(alice, 'old 1')
  const after = await alice.$eval('#messages', (list, offset) => {
    const item = list.querySelector(`.message[data-offset="${offset as string}"]`) as HTMLElement
    return item.getBoundingClientRect().top
  }, before.offset)
  t.ok(Math.abs(after - before.top) < 2, `the message at the top stays in place (${before.top} then ${after})`)
  t.same(await texts(alice), [...Array.from({ length: 130 }, (_, i) => `old ${i + 1}`), 'a reply to the first'], 'every message once, in order')
  t.equal(await messageWith(alice, 'a reply to the first').locator('.quote-text').textContent(), 'old 1', 'the quoted message is loaded now')
  await mkdir(ARTIFACTS, { recursive: true })
  await alice.screenshot({ path: `${ARTIFACTS}scroll-back.png` })
  await alice.locator('#messages .older').waitFor({ state: 'detached', ...WAIT })
  t.pass('nothing older: no button to load more')
  t.same(problems.take(), [], 'no dialog opened and no page error')
})

t.test('unread badges: from the server, kept across a reload, cleared by another tab of the user', async (t) => {
  const { app, base } = await start(t)
  const alice = await tab(await user(t), `${base}/?name=alice`)
  await say(alice, 'welcome')
  const bobs = await user(t)
  const bob = await tab(bobs, `${base}/?name=bob`)
  // Shown, so read: the server keeps his position in the lobby from now on.
  await waitForText(bob, 'welcome')
  await bob.fill('#room-input', 'other')
  await bob.press('#room-input', 'Enter')
  await bob.waitForFunction(() => document.getElementById('room-title')?.textContent === 'other', undefined, WAIT)
  t.equal(await badge(bob, 'lobby'), '', 'read while shown')

  await say(alice, 'one')
  await say(alice, 'two')
  await waitForBadge(bob, 'lobby', '2')
  t.equal(await badge(alice, 'lobby'), '', 'her own messages, in the room she shows, are not unread')
  const bobId = await bob.getAttribute('#users li.me', 'data-id') as string
  t.match(bobId, /^u-/, 'bob has an id from his key, so the server keeps his positions')
  t.same(await app.chat.unread(bobId), { lobby: 2 }, 'the server counts the same (nothing was ever in the other room to read)')

  await bob.reload()
  await status(bob, 'open')
  await bob.waitForFunction(() => document.querySelectorAll('#room-list .room').length === 2, undefined, WAIT)
  await waitForBadge(bob, 'lobby', '2')
  t.equal(await bob.textContent('#room-title'), 'other', 'still showing the other room')
  await mkdir(ARTIFACTS, { recursive: true })
  await bob.screenshot({ path: `${ARTIFACTS}unread.png` })

  // A second tab of bob's: it shows the lobby, which reads it for him everywhere.
  const second = await tab(bobs, `${base}/?name=bob`)
  await waitForText(second, 'two')
  await waitForBadge(bob, 'lobby', '')
  t.same(await app.chat.unread(bobId), { lobby: 0 })
  t.equal(await bob.getAttribute('#users li.me', 'data-id'), await second.getAttribute('#users li.me', 'data-id'), 'one user in both tabs')

  t.same(problems.take(), [], 'no dialog opened and no page error')
})
