// The browser (and Node) client. The compiled file is served at
// `<path>/client.js` and its modules under `<path>/client/`, loaded by pages
// as ES modules: it may import only ./client/*.js at runtime, never server
// code (type imports are erased, so they may come from anywhere).
import type { ErrorFrame, JoinedFrame, JoinFrame, MembersFrame, MessageFrame, SendFrame, ServerFrame, User, WelcomeFrame } from './protocol/wire.js'
import type { ChatEvents, ClosedEvent, ConnectionStatus, ConnectOptions, MembersPage, RoomPresence } from './client/types.js'
import { Backoff } from './client/backoff.js'
import { checkRoom, checkToken, checkUserId } from './client/checks.js'
import { Directs } from './client/directs.js'
import { Emitter } from './client/emitter.js'
import { Identity } from './client/identity.js'
import { JoinRetries } from './client/join-retries.js'
import { Link } from './client/link.js'
import { randomCid } from './client/requests.js'
import { Rooms } from './client/rooms.js'
import { membersError, membersRequest, Roster } from './client/roster.js'
import { SendQueue } from './client/send-queue.js'
import { socketUrl } from './client/socket-url.js'

export type { ChatEvents, ClosedEvent, ConnectionStatus, ConnectOptions, MembersError, MembersPage, RoomPresence, WebSocketLike } from './client/types.js'
export { ROOM_PATTERN } from './client/checks.js'

// CloseCode.DISCONNECTED and CloseCode.SESSION_EXPIRED (lib/close-codes.ts),
// as numbers: the client imports no server code.
const DISCONNECTED = 4000
const SESSION_EXPIRED = 4001

/** A chat connection that reconnects by itself and resumes every room where it stopped. */
export class ChatConnection {
  #url: URL
  #link: Link
  // Whether the app gives `params`, which may renew expired credentials.
  #renewable: boolean
  #events = new Emitter<ChatEvents>()
  #status: ConnectionStatus = 'connecting'
  #me: Identity
  #rooms = new Rooms()
  #directs = new Directs()
  #retries: JoinRetries
  #sends: SendQueue
  #roster = new Roster(this.#events)

  constructor (url: string | URL, opts: ConnectOptions = {}) {
    const Socket = opts.WebSocket ?? globalThis.WebSocket
    if (typeof Socket !== 'function') {
      throw new TypeError('no global WebSocket: pass { WebSocket } from the "ws" package')
    }
    const backoff = new Backoff(opts.backoff)
    this.#retries = new JoinRetries(backoff)
    this.#sends = new SendQueue(opts.maxQueue)
    if (opts.params !== undefined && typeof opts.params !== 'function') throw new TypeError('params must be a function')
    this.#renewable = opts.params !== undefined
    this.#link = new Link(Socket, backoff, opts.params, {
      // The first room joins with the upgrade itself.
      url: (params) => socketUrl(this.#url, params, { name: this.#me.name, resume: this.#me.resume, first: this.#rooms.dial() }),
      message: (data) => this.#receive(data),
      closed: (code, reason) => this.#closed(code, reason),
      retrying: () => this.#dropped()
    })

    // Relative URLs ('/chat') resolve against the page, with http(s) turned into ws(s).
    this.#url = new URL(url, globalThis.location?.href)
    this.#url.protocol = this.#url.protocol.replace(/^http/, 'ws')
    const params = this.#url.searchParams
    this.#me = new Identity(opts.name ?? params.get('name'), opts.resume ?? params.get('resume'))
    const first = params.get('room')
    if (first !== null) this.#rooms.first(checkRoom(first), params.get('since') ?? '')
    for (const room of opts.rooms ?? []) this.#rooms.want(checkRoom(room))
    this.#link.open()
  }

  get status (): ConnectionStatus { return this.#status }
  /** This user's id, from `welcome`; kept across reconnects. */
  get id (): string | null { return this.#me.id }
  /** This socket's id, from `welcome` (what `app.chat.disconnect({ clientId })` takes); each reconnect gets a new one. */
  get clientId (): string | null { return this.#me.clientId }
  /** When the session ends unless refreshed (milliseconds since the Unix epoch), from `welcome` or `refreshed`; `null` when it does not. */
  get expiresAt (): number | null { return this.#me.expiresAt }
  get name (): string | null { return this.#me.name }
  /**
   * Pass it as `resume` to a later {@link connect} to be the same user there.
   * The latest from `welcome` (before the first, the `resume` given); `null`
   * when there is none, as when the server's `identify` gives the id.
   */
  get resumeToken (): string | null { return this.#me.resume }
  /** Rooms the server has confirmed with `joined` on the current socket, direct rooms too. */
  get rooms (): string[] { return this.#rooms.joined }
  /**
   * Direct conversations, room -> the other user: opened with
   * {@link openDirect} or by the other user's message, and kept across
   * reconnects until left, removed or refused.
   */
  get directs (): Map<string, User> { return this.#directs.rooms }

  /**
   * What this client knows of the users of `room` (`undefined` when not in
   * it): the server's `count`, and the users of its `joined`, of the pages
   * fetched since, and of the presence events. While the room sends
   * `occupancy` instead of presence events, `users` may still list some who
   * left and miss some who came; page again to catch up.
   */
  presence (room: string): RoomPresence | undefined {
    return this.#roster.presence(room)
  }

  /** Adds a listener; returns a function that removes it. */
  on<E extends keyof ChatEvents> (event: E, listener: (payload: ChatEvents[E]) => void): () => void {
    return this.#events.on(event, listener)
  }

  off<E extends keyof ChatEvents> (event: E, listener: (payload: ChatEvents[E]) => void): void {
    this.#events.off(event, listener)
  }

  /** Sends `text` to `room` (default: the first room); queued while not open. Returns the message's `cid`. */
  send (text: string, room?: string): string {
    if (this.#status === 'closed') throw new Error('chat connection is closed')
    const cid = randomCid()
    const frame: SendFrame = { type: 'message', text, cid }
    if (room !== undefined) frame.room = checkRoom(room)
    if (this.#status === 'open') this.#sendMessage(frame)
    else this.#sends.hold(frame)
    return cid
  }

  join (room: string): void {
    this.#rooms.want(checkRoom(room))
    if (this.#status === 'open') this.#join(room)
  }

  leave (room: string): void {
    // A join may still be on its way, so a wanted room is left even before its `joined`.
    const wanted = this.#rooms.unwant(room)
    const direct = this.#directs.delete(room)
    this.#retries.stop(room)
    if (this.#status === 'open' && (wanted || direct || this.#rooms.isJoined(room))) this.#link.write({ type: 'leave', room })
  }

  /**
   * Opens the direct conversation with user `userId` (their id, not their
   * name): the answer is a `joined` with `with`, and the room is in
   * {@link directs} from then on. Sent once open, when not yet. Returns the
   * join's `cid`, which an `error` for it (`forbidden`, say) carries.
   */
  openDirect (userId: string): string {
    const cid = randomCid()
    this.#directs.ask(checkUserId(userId), cid)
    if (this.#status === 'open') this.#joinDirect(userId, this.#directs.roomOf(userId), cid)
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
    if (this.#status === 'open') this.#link.write({ type: 'refresh', token })
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
    return await this.#roster.request(frame, (request) => this.#link.write(request))
  }

  /**
   * Fetches the next page of the users of `room` into {@link presence}:
   * `limit` users (default the server's page size) after the last page it
   * loaded, or from the first when it loaded none yet or the last one was
   * the end (the list is then refreshed). Resolves with whether more are
   * left, as `presence(room).more` says.
   */
  async loadMembers (room: string, limit?: number): Promise<boolean> {
    return await this.#roster.loadMore(room, limit, async (page) => await this.members(room, page))
  }

  /** Asks for a new name; while not open it is used on the next connect. */
  rename (name: string): void {
    if (this.#status === 'open') this.#link.write({ type: 'name', name })
    else this.#me.name = name
  }

  /** Stops for good: no reconnect, no timer, queued messages dropped; emits `closed` with 1000. */
  close (): void {
    if (this.#status === 'closed') return
    this.#end({ code: 1000, reason: 'client closed' })
  }

  #end (why: ClosedEvent): void {
    this.#link.stop(why.code, why.reason)
    this.#retries.stop()
    this.#roster.failPages()
    this.#sends.clear()
    this.#rooms.dropped()
    this.#roster.clear()
    this.#setStatus('closed')
    this.#events.emit('closed', why)
  }

  #setStatus (status: ConnectionStatus): void {
    if (status === this.#status) return
    this.#status = status
    this.#events.emit('status', status)
  }

  #sendMessage (frame: SendFrame): void {
    this.#sends.sent(frame)
    this.#link.write(frame)
  }

  #join (room: string): void {
    const since = this.#rooms.asking(room)
    this.#link.write(since === undefined ? { type: 'join', room } : { type: 'join', room, since })
  }

  /** Joins the direct room with `userId`; `room`, when known, resumes it where it stopped. */
  #joinDirect (userId: string, room: string | undefined, cid?: string): void {
    const frame: JoinFrame = { type: 'join', with: userId }
    if (room !== undefined) {
      const since = this.#rooms.asking(room)
      if (since !== undefined) frame.since = since
    }
    if (cid !== undefined) frame.cid = cid
    this.#link.write(frame)
  }

  #closed (code: number, reason: string): void {
    // Nothing would make a new attempt succeed: the app threw this client
    // out, or its credentials expired and there is no way to get fresh ones.
    if (code === DISCONNECTED || (code === SESSION_EXPIRED && !this.#renewable)) {
      return this.#end({ code, reason })
    }
    this.#link.retry()
  }

  /** A socket dropped, or an attempt failed before one opened: the link waits its backoff, then tries again. */
  #dropped (): void {
    this.#retries.stop()
    this.#roster.failPages()
    this.#rooms.dropped()
    this.#setStatus('reconnecting')
  }

  #receive (data: string): void {
    let frame: ServerFrame
    try {
      frame = JSON.parse(data)
    } catch {
      return
    }
    switch (frame.type) {
      case 'welcome': return this.#welcome(frame)
      case 'joined': return this.#onJoined(frame)
      case 'message': return this.#onMessage(frame)
      case 'left':
        // Asked for, or `removed` by the app: either way not to be rejoined.
        this.#rooms.left(frame.room)
        this.#forget(frame.room)
        return this.#events.emit('left', frame)
      case 'renamed':
        this.#me.name = frame.name
        // Presence tells the others; this client's own entries follow here.
        if (this.#me.id !== null) this.#roster.rename(this.#me.id, frame.name)
        return this.#events.emit('renamed', frame)
      case 'presence':
        this.#roster.onPresence(frame)
        return this.#events.emit('presence', frame)
      case 'occupancy': return this.#roster.setCount(frame.room, frame.count)
      case 'members': return this.#roster.onMembers(frame)
      case 'refreshed':
        this.#me.expiresAt = frame.expiresAt
        return this.#events.emit('refreshed', frame)
      case 'error':
        // A members() request's error is its promise's to tell.
        if (this.#roster.onError(frame.cid, frame.code, frame.message)) return
        this.#onError(frame)
        return this.#events.emit('error', frame)
    }
  }

  #onError (frame: ErrorFrame): void {
    const { cid, code, room } = frame
    this.#sends.settled(cid)
    const direct = this.#directs.askedBy(cid)
    // Asking again would get the same answer.
    if (direct !== undefined && (code === 'forbidden' || code === 'invalid_message')) this.#directs.dropAsk(direct)
    // A refused publish is `forbidden` too, with the message's cid: the room
    // stays. Joins carry no cid, but openDirect's.
    const aboutJoin = room !== undefined && (cid === undefined || direct !== undefined)
    if (code === 'unavailable' && aboutJoin) this.#retryJoin(room, direct)
    if (code === 'forbidden' && aboutJoin) {
      this.#rooms.refused(room)
      this.#forget(room)
    }
  }

  /** Out of `room` for good: no direct room, no users, no retry. */
  #forget (room: string): void {
    this.#directs.delete(room)
    this.#roster.delete(room)
    this.#retries.stop(room)
  }

  /** Asks again, after a backoff, for a join of `room` (or the direct room with `userId`) that the server could not serve. */
  #retryJoin (room: string, userId: string | undefined): void {
    // That join gets no `joined`: an unasked one later would be a reset.
    this.#rooms.answered(room)
    const socket = this.#link.socket
    this.#retries.schedule(room, () => {
      // On another socket every room is asked for again anyway.
      if (socket !== this.#link.socket || this.#status !== 'open' || this.#rooms.isJoined(room)) return
      const direct = this.#directs.get(room)?.id ?? userId
      if (direct !== undefined) this.#joinDirect(direct, this.#directs.has(room) ? room : undefined, this.#directs.askOf(direct))
      else if (this.#rooms.wants(room)) this.#join(room)
    })
  }

  #welcome (frame: WelcomeFrame): void {
    this.#link.opened()
    this.#me.welcome(frame)
    this.#events.emit('welcome', frame)
    if (this.#status === 'closed') return
    // The server handles one socket's frames in order, so these joins are done
    // before the queued messages that follow them.
    for (const room of this.#rooms.rejoins()) this.#join(room)
    const { rooms, asks } = this.#directs.rejoins()
    for (const [room, user] of rooms) this.#joinDirect(user.id, room)
    for (const [userId, cid] of asks) this.#joinDirect(userId, undefined, cid)
    const { unclear, queued } = this.#sends.drain()
    for (const frame of unclear) this.#link.write(frame)
    for (const frame of queued) this.#sendMessage(frame)
    this.#setStatus('open')
  }

  #onJoined (frame: JoinedFrame): void {
    this.#retries.stop(frame.room)
    for (const message of frame.history) this.#sends.settled(message.cid)
    if (frame.with !== undefined) this.#directs.joined(frame.room, frame.with)
    const { reset, history } = this.#rooms.onJoined(frame, this.#directs.has(frame.room))
    const before = this.#roster.start(frame)
    if (reset) this.#events.emit('reset', frame)
    this.#events.emit('joined', history === frame.history ? frame : { ...frame, history })
    if (before !== frame.count) this.#events.emit('count', { room: frame.room, count: frame.count })
  }

  #onMessage (frame: MessageFrame): void {
    this.#sends.settled(frame.cid)
    if (this.#rooms.onMessage(frame)) this.#events.emit('message', frame)
  }
}

/** Opens a chat connection to `url` (`ws://host/chat?room=lobby`, or `/chat` in a page). */
export function connect (url: string | URL, opts?: ConnectOptions): ChatConnection {
  return new ChatConnection(url, opts)
}
