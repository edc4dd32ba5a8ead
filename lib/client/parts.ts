import { Backoff } from './backoff.js'
import { Directs } from './directs.js'
import { Edits } from './edits.js'
import { Emitter } from './emitter.js'
import { Identity } from './identity.js'
import { JoinRetries } from './join-retries.js'
import { Link } from './link.js'
import type { LinkEvents } from './link.js'
import { Reads } from './reads.js'
import { Rooms } from './rooms.js'
import { Roster } from './roster.js'
import { Scrollback } from './scrollback.js'
import { SendQueue } from './send-queue.js'
import { socketUrl } from './socket-url.js'
import { Typing } from './typing.js'
import type { ChatEvents, ClosedEvent, ConnectOptions, WebSocketLike } from './types.js'

/** What one chat connection is made of, shared by the connection, its joins and its inbox. */
export interface Parts {
  readonly link: Link
  readonly events: Emitter<ChatEvents>
  readonly me: Identity
  readonly rooms: Rooms
  readonly directs: Directs
  readonly retries: JoinRetries
  readonly sends: SendQueue
  readonly roster: Roster
  readonly scrollback: Scrollback
  readonly typing: Typing
  /** The applied view: messages with their edits and deletes. */
  readonly edits: Edits
  readonly reads: Reads
  /** Whether the socket is open and welcomed, so frames may be written. */
  readonly open: () => boolean
}

/**
 * The parts of a connection to `url` (its search params already read into
 * `me` and the rooms by the caller): `on` is the connection's side of the
 * link, `open` says whether it is open now.
 */
export function buildParts (
  Socket: new (url: string) => WebSocketLike, url: URL, opts: ConnectOptions, on: Omit<LinkEvents, 'url'>, open: () => boolean
): Parts {
  const backoff = new Backoff(opts.backoff)
  const events = new Emitter<ChatEvents>()
  const params = url.searchParams
  const me = new Identity(opts.name ?? params.get('name'), opts.resume ?? params.get('resume'))
  const rooms = new Rooms()
  const link = new Link(Socket, backoff, opts.params, {
    ...on,
    // The first room joins with the upgrade itself.
    url: (params) => socketUrl(url, params, { name: me.name, resume: me.resume, first: rooms.dial() })
  })
  return {
    link,
    events,
    me,
    rooms,
    directs: new Directs(),
    retries: new JoinRetries(backoff),
    sends: new SendQueue(opts.maxQueue),
    roster: new Roster(events),
    scrollback: new Scrollback(events),
    // Signals are never queued: one that cannot go now is stale by the time it could.
    typing: new Typing(events, (frame) => {
      if (!open()) return false
      link.write(frame)
      return true
    }),
    edits: new Edits(),
    reads: new Reads(events),
    open
  }
}

/** A socket dropped, or an attempt failed: what waited on it fails, and nothing is joined until the next says so. */
export function dropParts (p: Parts): void {
  p.retries.stop()
  p.roster.failPages()
  p.scrollback.failAll()
  p.rooms.dropped()
  p.typing.dropped()
}

/** The connection is over for good: the link stops, and nothing is kept, queued or timed. */
export function endParts (p: Parts, why: ClosedEvent): void {
  p.link.stop(why.code, why.reason)
  dropParts(p)
  p.sends.clear()
  p.edits.clear()
  p.roster.clear()
  p.scrollback.clear()
  p.typing.close()
}
