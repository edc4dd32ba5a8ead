// The parts of a typed-client connection over a link that records what it
// would write, for the unit tests of the modules that drive them (joins,
// inbox); the connection itself is tested over real sockets in test/client.test.ts.
import { Backoff } from '../../lib/client/backoff.js'
import { Directs } from '../../lib/client/directs.js'
import { Edits } from '../../lib/client/edits.js'
import { Emitter } from '../../lib/client/emitter.js'
import { Identity } from '../../lib/client/identity.js'
import { JoinRetries } from '../../lib/client/join-retries.js'
import type { Link } from '../../lib/client/link.js'
import type { Parts } from '../../lib/client/parts.js'
import { Reads } from '../../lib/client/reads.js'
import { Rooms } from '../../lib/client/rooms.js'
import { Roster } from '../../lib/client/roster.js'
import { Scrollback } from '../../lib/client/scrollback.js'
import { SendQueue } from '../../lib/client/send-queue.js'
import type { ChatEvents } from '../../lib/client/types.js'
import { Typing } from '../../lib/client/typing.js'
import type { ClientFrame } from '../../lib/protocol/wire.js'

export interface TestParts extends Parts {
  /** Frames written, in order. */
  readonly written: ClientFrame[]
  /** Events emitted, as `name` entries in order. */
  readonly emitted: Array<keyof ChatEvents>
  /** Whether `open()` says yes; and the socket the link holds (a new object is a new socket). */
  state: { open: boolean, socket: object, opened: number }
}

export function testParts (backoff = new Backoff({ initialMs: 100, maxMs: 1000 })): TestParts {
  const written: ClientFrame[] = []
  const emitted: Array<keyof ChatEvents> = []
  const state = { open: true, socket: {}, opened: 0 }
  const link = {
    write: (frame: ClientFrame) => { written.push(frame) },
    get socket () { return state.socket },
    opened: () => { state.opened++ }
  } as unknown as Link
  const events = new Emitter<ChatEvents>()
  for (const name of ['welcome', 'joined', 'reset', 'message', 'left', 'renamed', 'presence', 'count', 'members', 'refreshed', 'error', 'edit', 'delete'] as const) {
    events.on(name, () => emitted.push(name))
  }
  return {
    link,
    events,
    me: new Identity(null, null),
    rooms: new Rooms(),
    directs: new Directs(),
    retries: new JoinRetries(backoff),
    sends: new SendQueue(),
    roster: new Roster(events),
    scrollback: new Scrollback(events),
    typing: new Typing(events, (frame) => {
      if (!state.open) return false
      written.push(frame)
      return true
    }),
    edits: new Edits(),
    reads: new Reads(events),
    open: () => state.open,
    written,
    emitted,
    state
  }
}
