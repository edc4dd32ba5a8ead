import type { HistoryPage, NewMessage } from '../../lib/stores/history-store.js'

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
