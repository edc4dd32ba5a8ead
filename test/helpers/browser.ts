// The example page in a real Chromium: Debian's, driven by playwright-core.
import { chromium } from 'playwright-core'
import type { Browser, BrowserContext, Page } from 'playwright-core'

/** How long a page gets to show what a test waits for. */
export const WAIT = { timeout: 15_000 }

export async function launchChromium (): Promise<Browser> {
  return await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run']
  })
}

/**
 * Dialogs, uncaught page errors and failed requests (a missing favicon.ico,
 * say) of the pages it watches; a test ends by checking there were none.
 */
export class Problems {
  readonly list: string[] = []

  watch (page: Page): Page {
    page.on('response', (response) => {
      if (response.status() >= 400) this.list.push(`${response.status()} for ${response.url()}`)
    })
    page.on('dialog', (dialog) => {
      this.list.push(`dialog: ${dialog.message()}`)
      dialog.dismiss().catch(() => {})
    })
    page.on('pageerror', (err) => this.list.push(`page error: ${err.message}`))
    return page
  }

  take (): string[] {
    return this.list.splice(0)
  }
}

/** A browser context: one user's browser, whose tabs share localStorage (and so the user key). */
export async function newContext (browser: Browser): Promise<BrowserContext> {
  // One locale, so the tests can read the dates the page shows.
  return await browser.newContext({ viewport: { width: 900, height: 640 }, locale: 'en-US' })
}

export async function status (page: Page, expected: string): Promise<void> {
  await page.waitForFunction((s) => document.getElementById('status')?.textContent === s, expected, WAIT)
}

/** The delivered messages' texts the page shows, in order (not those still sending). */
export async function texts (page: Page): Promise<string[]> {
  return await page.$$eval('#messages .message:not(.pending) .text', (nodes) => nodes.map((n) => n.textContent ?? ''))
}

/** Waits until the page shows `text` as a delivered message. */
export async function waitForText (page: Page, text: string): Promise<void> {
  await page.waitForFunction((x) => [...document.querySelectorAll('#messages .message:not(.pending) .text')].some((n) => n.textContent === x), text, WAIT)
}

export async function waitForUsers (page: Page, names: string[]): Promise<void> {
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('#users .name')].map((n) => n.textContent).sort()
    return JSON.stringify(got) === JSON.stringify(want)
  }, [...names].sort(), WAIT)
}

export async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text-input', text)
  await page.press('#text-input', 'Enter')
}
