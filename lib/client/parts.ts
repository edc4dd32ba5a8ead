import type { Directs } from './directs.js'
import type { Edits } from './edits.js'
import type { Emitter } from './emitter.js'
import type { Identity } from './identity.js'
import type { JoinRetries } from './join-retries.js'
import type { Link } from './link.js'
import type { Reads } from './reads.js'
import type { Rooms } from './rooms.js'
import type { Roster } from './roster.js'
import type { Scrollback } from './scrollback.js'
import type { SendQueue } from './send-queue.js'
import type { Typing } from './typing.js'
import type { ChatEvents } from './types.js'

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
