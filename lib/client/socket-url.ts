import type { Since } from '../protocol/wire.js'
import type { Params } from './params.js'

/** What the client itself puts in a socket's URL. */
export interface OwnParams {
  name: string | null
  resume: string | null
  /** The room that joins with the upgrade, and where it stopped; without one the server's default room applies. */
  first: { room: string, since: Since | undefined } | undefined
}

/**
 * The URL of a socket: `base` with the app's `params` set over its query,
 * then the client's own over both (a stale `room`, `since` or `resume` of
 * `base` is dropped).
 */
export function socketUrl (base: URL, params: Params, { name, resume, first }: OwnParams): string {
  const url = new URL(base)
  const query = url.searchParams
  for (const [key, value] of Object.entries(params)) query.set(key, String(value))
  if (name !== null) query.set('name', name)
  query.delete('room')
  query.delete('since')
  query.delete('resume')
  if (resume !== null) query.set('resume', resume)
  if (first !== undefined) {
    query.set('room', first.room)
    if (first.since !== undefined) query.set('since', `${first.since.epoch}:${first.since.offset}`)
  }
  return url.href
}
