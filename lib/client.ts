// The browser (and Node) client. The compiled file is served at
// `<path>/client.js` and its modules under `<path>/client/`, loaded by pages
// as ES modules: it may import only ./client/*.js at runtime, never server
// code (type imports are erased, so they may come from anywhere).
import type { DeleteRequest, EditRequest, HistoryFrame, MembersFrame, SendFrame, User } from './protocol/wire.js'
import type { ChatEvents, ClosedEvent, ConnectionStatus, ConnectOptions, HistoryQuery, MembersPage, RoomPresence, RoomUnread } from './client/types.js'
import { checkMeta, checkOffset, checkRoom, checkToken, checkUserId } from './client/checks.js'
import type { AppliedMessage } from './client/edits.js'
import { Inbox } from './client/inbox.js'
import { Joins } from './client/joins.js'
import { buildParts, dropParts, endParts } from './client/parts.js'
import type { Parts } from './client/parts.js'
import { randomCid } from './client/requests.js'
import { membersError, membersRequest } from './client/roster.js'
import { historyError, Scrollback } from './client/scrollback.js'

export type { AppliedMessage } from './client/edits.js'
export type { ChatEvents, ClosedEvent, ConnectionStatus, ConnectOptions, HistoryError, HistoryQuery, MembersError, MembersPage, RoomPresence, RoomUnread, TypingEvent, WebSocketLike } from './client/types.js'
export { ROOM_PATTERN } from './client/checks.js'

// CloseCode.DISCONNECTED and CloseCode.SESSION_EXPIRED (lib/close-codes.ts),
// as numbers: the client imports no server code.
const DISCONNECTED = 4000
const SESSION_EXPIRED = 4001

/** A chat connection that reconnects by itself and resumes every room where it stopped. */
export class ChatConnection {
  #url: URL
  // Whether the app gives `params`, which may renew expired credentials.
  #renewable: boolean
  #status: ConnectionStatus = 'connecting'
  readonly #p: Parts
  readonly #joins: Joins
  readonly #inbox: Inbox

  constructor (url: string | URL, opts: ConnectOptions = {}) {
    const Socket = opts.WebSocket ?? globalThis.WebSocket
    if (typeof Socket !== 'function') {
      throw new TypeError('no global WebSocket: pass { WebSocket } from the "ws" package')
    }
    if (opts.params !== undefined && typeof opts.params !== 'function') throw new TypeError('params must be a function')
    this.#renewable = opts.params !== undefined
    // Relative URLs ('/chat') resolve against the page, with http(s) turned into ws(s).
    this.#url = new URL(url, globalThis.location?.href)
    this.#url.protocol = this.#url.protocol.replace(/^http/, 'ws')
    const params = this.#url.searchParams

    this.#p = buildParts(Socket, this.#url, opts, {
      message: (data) => this.#inbox.receive(data),
      closed: (code, reason) => this.#closed(code, reason),
      retrying: () => this.#dropped()
    }, () => this.#status === 'open')
    this.#joins = new Joins(this.#p)
    this.#inbox = new Inbox(this.#p, this.#joins, () => this.#welcomed())

    const first = params.get('room')
    if (first !== null) this.#p.rooms.first(checkRoom(first), params.get('since') ?? '')
    for (const room of opts.rooms ?? []) this.#p.rooms.want(checkRoom(room))
    this.#p.link.open()
  }

  get status (): ConnectionStatus { return this.#status }
  /** This user's id, from `welcome`; kept across reconnects. */
  get id (): string | null { return this.#p.me.id }
  /** This socket's id, from `welcome` (what `app.chat.disconnect({ clientId })` takes); each reconnect gets a new one. */
  get clientId (): string | null { return this.#p.me.clientId }
  /** When the session ends unless refreshed (milliseconds since the Unix epoch), from `welcome` or `refreshed`; `null` when it does not. */
  get expiresAt (): number | null { return this.#p.me.expiresAt }
  get name (): string | null { return this.#p.me.name }
  /**
   * Pass it as `resume` to a later {@link connect} to be the same user there.
   * The latest from `welcome` (before the first, the `resume` given); `null`
   * when there is none, as when the server's `identify` gives the id.
   */
  get resumeToken (): string | null { return this.#p.me.resume }
  /** Rooms the server has confirmed with `joined` on the current socket, direct rooms too. */
  get rooms (): string[] { return this.#p.rooms.joined }
  /**
   * Direct conversations, room -> the other user: opened with
   * {@link openDirect} or by the other user's message, and kept across
   * reconnects until left, removed or refused.
   */
  get directs (): Map<string, User> { return this.#p.directs.rooms }

  /**
   * What this client knows of the users of `room` (`undefined` when not in
   * it): the server's `count`, and the users of its `joined`, of the pages
   * fetched since, and of the presence events. While the room sends
   * `occupancy` instead of presence events, `users` may still list some who
   * left and miss some who came; page again to catch up.
   */
  presence (room: string): RoomPresence | undefined {
    return this.#p.roster.presence(room)
  }

  /** Where the user stopped reading `room` and how many messages came after it (`undefined` before its `joined`). */
  unread (room: string): RoomUnread | undefined {
    return this.#p.reads.get(room)
  }

  /**
   * Marks `room` read up to `offset` (default: the latest message this
   * client has seen there), for every tab of the user: the server keeps it
   * and tells the others. A lower position than the current one changes
   * nothing. While not open, it is sent when the room is joined again.
   */
  read (room: string, offset?: number): void {
    checkRoom(room)
    const to = offset ?? this.#p.reads.latest(room)
    if (!Number.isSafeInteger(to) || to < 0) throw new TypeError('offset must be an integer >= 0')
    if (this.#p.reads.moved(room, to) && this.#status === 'open' && this.#p.rooms.isJoined(room)) {
      this.#p.link.write({ type: 'read', room, offset: to })
    }
  }

  /** Adds a listener; returns a function that removes it. */
  on<E extends keyof ChatEvents> (event: E, listener: (payload: ChatEvents[E]) => void): () => void {
    return this.#p.events.on(event, listener)
  }

  off<E extends keyof ChatEvents> (event: E, listener: (payload: ChatEvents[E]) => void): void {
    this.#p.events.off(event, listener)
  }

  /**
   * Sends `text` to `room` (default: the first room), with `meta` when given
   * (a JSON object: `replyTo`, `mentions`, or whatever the server's
   * `metaSchema` allows); queued while not open. Returns the message's `cid`.
   */
  send (text: string, room?: string, meta?: Record<string, unknown>): string {
    if (this.#status === 'closed') throw new Error('chat connection is closed')
    const cid = randomCid()
    const frame: SendFrame = { type: 'message', text, cid }
    if (room !== undefined) frame.room = checkRoom(room)
    if (meta !== undefined) frame.meta = checkMeta(meta)
    if (this.#status === 'open') this.#sendMessage(frame)
    else this.#p.sends.hold(frame)
    return cid
  }

  /**
   * Replaces the text of the message at offset `of` of `room` (by default
   * only one's own), and its `meta` when given; queued like `send`. Returns
   * the edit's `cid`.
   */
  edit (room: string, of: number, text: string, meta?: Record<string, unknown>): string {
    const frame: EditRequest = { type: 'edit', room: checkRoom(room), of: checkOffset(of), text }
    if (meta !== undefined) frame.meta = checkMeta(meta)
    return this.#amend(frame)
  }

  /** Deletes the message at offset `of` of `room` (by default only one's own); queued like `send`. Returns the delete's `cid`. */
  delete (room: string, of: number): string {
    return this.#amend({ type: 'delete', room: checkRoom(room), of: checkOffset(of) })
  }

  /** The message at `offset` of `room` with its edits and delete applied, if this client holds it (see {@link view}). */
  message (room: string, offset: number): AppliedMessage | undefined {
    return this.#p.edits.message(room, offset)
  }

  /** The messages this client holds of `room` (its latest 500 at most), oldest first, with their edits and deletes applied. */
  view (room: string): AppliedMessage[] {
    return this.#p.edits.view(room)
  }

  join (room: string): void {
    this.#p.rooms.want(checkRoom(room))
    if (this.#status === 'open') this.#joins.room(room)
  }

  leave (room: string): void {
    // A join may still be on its way, so a wanted room is left even before its `joined`.
    const wanted = this.#p.rooms.unwant(room)
    const direct = this.#p.directs.delete(room)
    this.#p.retries.stop(room)
    if (this.#status === 'open' && (wanted || direct || this.#p.rooms.isJoined(room))) this.#p.link.write({ type: 'leave', room })
  }

  /**
   * Opens the direct conversation with user `userId` (their id, not their
   * name): the answer is a `joined` with `with`, and the room is in
   * {@link directs} from then on. Sent once open, when not yet. Returns the
   * join's `cid`, which an `error` for it (`forbidden`, say) carries.
   */
  openDirect (userId: string): string {
    const cid = randomCid()
    this.#p.directs.ask(checkUserId(userId), cid)
    if (this.#status === 'open') this.#joins.direct(userId, this.#p.directs.roomOf(userId), cid)
    return cid
  }

  /**
   * Extends the session with a fresh token, for the server's `refresh`
   * option: `refreshed` follows, or the server closes with 4001 and the
   * client reconnects with `params`. Does nothing while not open: the next
   * connection identifies afresh.
   */
  refresh (token: string): void {
    checkToken(token)
    if (this.#status === 'open') this.#p.link.write({ type: 'refresh', token })
  }

  /**
   * Asks the server for a page of the users of `room`, a room this client is
   * in: `limit` of them (default the server's `presenceListMax`) after the
   * cursor `after` (a page's `next`; from the first user without it). The
   * users join {@link presence}'s, and a `members` event carries the page.
   * Rejects with a {@link MembersError}: the server's error code,
   * `not_open`, `closed` when the socket drops first, or `timeout` after 10 s.
   */
  async members (room: string, page: MembersPage = {}): Promise<MembersFrame> {
    const frame = membersRequest(room, page)
    if (this.#status !== 'open') throw membersError('not_open', `chat connection is ${this.#status}`)
    return await this.#p.roster.request(frame, (request) => this.#p.link.write(request))
  }

  /**
   * Fetches the next page of the users of `room` into {@link presence}:
   * `limit` users (default the server's page size) after the last page it
   * loaded, or from the first when it loaded none yet or the last one was
   * the end (the list is then refreshed). Resolves with whether more are
   * left, as `presence(room).more` says.
   */
  async loadMembers (room: string, limit?: number): Promise<boolean> {
    return await this.#p.roster.loadMore(room, limit, async (page) => await this.members(room, page))
  }

  /**
   * Tells the other members of `room` this user is typing: call it on every
   * keystroke. A `typing` signal goes out at most once per 2 s per room,
   * and only while open. Returns whether one went out.
   */
  typing (room: string): boolean {
    return this.#p.typing.typing(room)
  }

  /** The users typing in `room` now, this user not included; the `typing` event tells each change. */
  typingIn (room: string): User[] {
    return this.#p.typing.users(room)
  }

  /**
   * Asks for up to `limit` messages of `room` (a room this client is in)
   * with offsets below `before`, oldest first; the page's `more` says
   * whether older ones are kept. Compare its `epoch` with the room's: a page
   * of another epoch does not continue what is shown. Rejects with a
   * {@link HistoryError}: the server's error code, `not_open`, `closed` when
   * the socket drops first, or `timeout` after 10 s.
   */
  async history (room: string, query: HistoryQuery): Promise<HistoryFrame> {
    const frame = Scrollback.request(room, query)
    if (this.#status !== 'open') throw historyError('not_open', `chat connection is ${this.#status}`)
    return await this.#p.scrollback.request(frame, (request) => this.#p.link.write(request))
  }

  /**
   * Loads the page before the oldest message this client holds in `room`
   * (from its `joined`, then from each page loaded), emitted as a `history`
   * event to prepend. Resolves with whether older ones are left; `false`
   * without asking once none are. Rejects as {@link history} does, with
   * `not_in_room` before the room's `joined`, and with `stale` when the room
   * started over while the page was on its way.
   */
  async loadOlder (room: string, limit = 50): Promise<boolean> {
    return await this.#p.scrollback.loadOlder(room, limit, async (query) => await this.history(room, query))
  }

  /** Asks for a new name; while not open it is used on the next connect. */
  rename (name: string): void {
    if (this.#status === 'open') this.#p.link.write({ type: 'name', name })
    else this.#p.me.name = name
  }

  /** Stops for good: no reconnect, no timer, queued messages dropped; emits `closed` with 1000. */
  close (): void {
    if (this.#status === 'closed') return
    this.#end({ code: 1000, reason: 'client closed' })
  }

  #end (why: ClosedEvent): void {
    endParts(this.#p, why)
    this.#setStatus('closed')
    this.#p.events.emit('closed', why)
  }

  #setStatus (status: ConnectionStatus): void {
    if (status === this.#status) return
    this.#status = status
    this.#p.events.emit('status', status)
  }

  #amend (frame: EditRequest | DeleteRequest): string {
    if (this.#status === 'closed') throw new Error('chat connection is closed')
    frame.cid = randomCid()
    if (this.#status === 'open') this.#sendMessage(frame)
    else this.#p.sends.hold(frame)
    return frame.cid
  }

  #sendMessage (frame: SendFrame | EditRequest | DeleteRequest): void {
    this.#p.sends.sent(frame)
    this.#p.link.write(frame)
  }

  #closed (code: number, reason: string): void {
    // Nothing would make a new attempt succeed: the app threw this client
    // out, or its credentials expired and there is no way to get fresh ones.
    if (code === DISCONNECTED || (code === SESSION_EXPIRED && !this.#renewable)) {
      return this.#end({ code, reason })
    }
    this.#p.link.retry()
  }

  /** A socket dropped, or an attempt failed before one opened: the link waits its backoff, then tries again. */
  #dropped (): void {
    dropParts(this.#p)
    this.#setStatus('reconnecting')
  }

  /** The server welcomed a new socket: every room is asked for again, then what waited is sent. */
  #welcomed (): void {
    // A `welcome` listener may have closed the connection.
    if (this.#status === 'closed') return
    // The server handles one socket's frames in order, so these joins are done
    // before the queued messages that follow them.
    this.#joins.rejoin()
    const { unclear, queued } = this.#p.sends.drain()
    for (const frame of unclear) this.#p.link.write(frame)
    for (const frame of queued) this.#sendMessage(frame)
    this.#setStatus('open')
  }
}

/** Opens a chat connection to `url` (`ws://host/chat?room=lobby`, or `/chat` in a page). */
export function connect (url: string | URL, opts?: ConnectOptions): ChatConnection {
  return new ChatConnection(url, opts)
}
