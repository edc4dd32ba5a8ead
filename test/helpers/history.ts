import type { HistoryPage, NewMessage, OlderPage } from '../../lib/stores/history-store.js'

/** A message for `room`, as the chat session would publish it. */
export function message (room: string, text = 'hi', cid?: string): NewMessage {
  const m: NewMessage = { room, ts: 1_700_000_000_000, from: { id: 'u1', name: 'alice' }, text }
  if (cid !== undefined) m.cid = cid
  return m
}

/** The offsets of a page's messages; `null` for no page (a gap). */
export function offsets (page: HistoryPage | null): number[] | null {
  return page === null ? null : page.messages.map((m) => m.offset)
}

/** `from`, `from + 1`, … `to`. */
export function range (from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}

/** `before` of a store or broker, which is optional there: a test of one without it fails. */
export async function older (of: { before?: (room: string, offset: number, limit: number) => Promise<OlderPage> }, room: string, offset: number, limit: number): Promise<OlderPage> {
  if (of.before === undefined) throw new Error('no before()')
  return await of.before(room, offset, limit)
}

/**
 * Pages back from `before` (`read` answers one page) until a page says
 * `more: false`; every page, newest first. Fails past `maxPages` pages, or
 * on an empty page that claims more, either of which would never end.
 */
export async function pageBack<P extends Pick<OlderPage, 'messages' | 'more'>> (read: (before: number) => Promise<P>, before: number, maxPages = 10_000): Promise<P[]> {
  const pages: P[] = []
  let next = before
  for (let i = 0; i < maxPages; i++) {
    const page = await read(next)
    pages.push(page)
    if (!page.more) return pages
    const first = page.messages[0]
    if (first === undefined) throw new Error(`an empty page before ${next} says there is more`)
    next = first.offset
  }
  throw new Error(`still more after ${maxPages} pages`)
}
