import type { ChatMessage, DeleteRequest, EditRequest } from '../protocol/wire.js'
import type { Connection } from '../transport/connection.js'
import type { Access } from './access.js'

/** What an amendment check reads: one entry of a room's log. */
export type EntryReader = (room: string, offset: number) => Promise<ChatMessage | null>

/**
 * Decides whether an edit or a delete may go into a room's log: the entry
 * it names must be a message still kept (else `not_found`), the sender its
 * author or let by `authorize` (`moderate`, else `forbidden`), and an edit
 * within `editWindowMs` of the message (else `edit_window_expired`). An
 * author's edit also needs `publish`, as it puts new text in the room.
 *
 * Only the message's existence and author are checked, not what later
 * entries did to it: that would mean reading the room's log after it. So an
 * edit of a message deleted meanwhile (or two deletes racing) is stored
 * too, and every client view ignores it, as it does any edit or delete of a
 * message it shows deleted.
 */
export class Amendments {
  readonly #read: EntryReader
  readonly #access: Access
  readonly #editWindowMs: number

  constructor (read: EntryReader, access: Access, editWindowMs: number) {
    this.#read = read
    this.#access = access
    this.#editWindowMs = editWindowMs
  }

  /** Whether `frame` may be stored; when not, the sender has been answered. */
  async allows (conn: Connection, frame: EditRequest | DeleteRequest): Promise<boolean> {
    const { room, of, cid } = frame
    let original
    try {
      original = await this.#read(room, of)
    } catch (err) {
      conn.request.log.error({ err, room }, `fastify-chat: ${frame.type} failed, the adapter or store is unavailable`)
      conn.sendError('unavailable', `the message could not be read, send the ${frame.type} again`, cid, room)
      return false
    }
    if (original === null || original.type !== undefined) {
      conn.sendError('not_found', `room "${room}" has no message at offset ${of} (or it is no longer kept)`, cid, room)
      return false
    }
    let allowed: boolean | Promise<boolean> = true
    if (original.from.id !== conn.id) allowed = this.#access.allows(conn, 'moderate', room, undefined, original)
    else if (frame.type === 'edit') allowed = this.#access.allows(conn, 'publish', room)
    if (typeof allowed !== 'boolean') allowed = await allowed
    if (!allowed) {
      conn.sendError('forbidden', `not allowed to ${frame.type} message ${of} of room "${room}"`, cid, room)
      return false
    }
    if (frame.type === 'edit' && this.#editWindowMs > 0 && Date.now() - original.ts > this.#editWindowMs) {
      conn.sendError('edit_window_expired', `message ${of} is older than ${this.#editWindowMs} ms and can no longer be edited`, cid, room)
      return false
    }
    return true
  }
}
