// The browser (and Node) client. It must stay free of runtime imports: the
// compiled file is served as-is at `<path>/client.js` and loaded by pages as a
// standalone ES module (type imports are erased, so they may come from anywhere).
import type { ClientFrame, ErrorFrame, JoinedFrame, JoinFrame, MembersFrame, MembersRequest, MessageFrame, SendFrame, ServerFrame, Since, User, WelcomeFrame } from './protocol/wire.js'
import type { ChatEvents, ClosedEvent, ConnectionStatus, ConnectOptions, MembersError, MembersPage, RoomPresence, WebSocketLike } from './client/types.js'

export type { ChatEvents, ClosedEvent, ConnectionStatus, ConnectOptions, MembersError, MembersPage, RoomPresence, WebSocketLike } from './client/types.js'

// CloseCode.DISCONNECTED and CloseCode.SESSION_EXPIRED (lib/close-codes.ts),
// as numbers: a type import cannot carry them.
const DISCONNECTED = 4000
const SESSION_EXPIRED = 4001
// A socket that closed without a code (a fake, or an implementation that gives none): a drop.
const ABNORMAL = 1006

// wire.ts's MAX_USER_ID_LENGTH, MAX_TOKEN_LENGTH, MAX_MEMBERS_PAGE and MAX_CURSOR_LENGTH.
const MAX_USER_ID_LENGTH = 128
const MAX_TOKEN_LENGTH = 8192
const MAX_MEMBERS_PAGE = 1000
const MAX_CURSOR_LENGTH = 256

/**
 * Room names the server accepts. A copy of wire.ts's, since a type import
 * cannot carry a value (a test keeps the two equal); checking here keeps a bad
 * name from being retried on every reconnect.
 */
export const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

/** How long `params()` may take before the attempt counts as failed. */
const PARAMS_TIMEOUT_MS = 10_000
/** How long a `members()` page may take before its promise rejects. */
const MEMBERS_TIMEOUT_MS = 10_000

function checkRoom (room: string): string {
  if (typeof room !== 'string' || !ROOM_PATTERN.test(room)) {
    throw new TypeError(`invalid room name ${JSON.stringify(room)}: use 1 to 64 of A-Z a-z 0-9 _ -`)
  }
  return room
}

function checkUserId (userId: string): string {
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
    throw new TypeError(`invalid user id ${JSON.stringify(userId)}: use 1 to ${MAX_USER_ID_LENGTH} characters`)
  }
  return userId
}

function checkPage ({ after, limit }: MembersPage): MembersPage {
  if (after !== undefined && (typeof after !== 'string' || after.length > MAX_CURSOR_LENGTH)) {
    throw new TypeError(`after must be a cursor from a page's next, of at most ${MAX_CURSOR_LENGTH} characters`)
  }
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > MAX_MEMBERS_PAGE)) {
    throw new TypeError(`limit must be an integer from 1 to ${MAX_MEMBERS_PAGE}`)
  }
  return { after, limit }
}

function membersError (code: string, message: string): MembersError {
  return Object.assign(new Error(message), { code })
}

type Params = Record<string, string>

/** What the client knows of a joined room's users. */
interface Roster {
  count: number
  users: Map<string, User>
  // Where loadMembers() goes on: the last page's `next`; none before the first page or after the last.
  after: string | undefined
}

/** Whether loadMembers() has pages to fetch: it is partway through, or knows of fewer users than there are. */
function hasMore ({ after, users, count }: Roster): boolean {
  return after !== undefined || users.size < count
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}

/** 12 random bytes, hex; getRandomValues works on plain-http pages, unlike randomUUID. */
function randomCid (): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(12))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** A tiny typed emitter: the same in browsers and Node, and nothing to subclass. */
class Emitter<Events> {
  #listeners = new Map<keyof Events, Set<(payload: never) => void>>()

  on<E extends keyof Events> (event: E, listener: (payload: Events[E]) => void): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, set = new Set())
    set.add(listener)
    return () => this.off(event, listener)
  }

  off<E extends keyof Events> (event: E, listener: (payload: Events[E]) => void): void {
    this.#listeners.get(event)?.delete(listener)
  }

  emit<E extends keyof Events> (event: E, payload: Events[E]): void {
    // A copy, so listeners may unsubscribe while being called.
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        (listener as (payload: Events[E]) => void)(payload)
      } catch (err) {
        // Like EventTarget: report it without breaking the other listeners or our state.
        queueMicrotask(() => { throw err })
      }
    }
  }
}

/** A chat connection that reconnects by itself and resumes every room where it stopped. */
export class ChatConnection {
  #url: URL
  #WebSocket: new (url: string) => WebSocketLike
  #backoff: { initialMs: number, maxMs: number }
  #maxQueue: number
  #params: (() => Params | Promise<Params>) | undefined
  #events = new Emitter<ChatEvents>()
  #socket: WebSocketLike | null = null
  #status: ConnectionStatus = 'connecting'
  #attempt = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #id: string | null = null
  #clientId: string | null = null
  #expiresAt: number | null = null
  // From the `resume` option, then from each welcome: sent on every connect so the server keeps our id.
  #resume: string | null = null
  #name: string | null
  // Rooms to be in, in order: the first one rides in the URL on every (re)connect.
  #wanted = new Set<string>()
  // The URL named no room: until the first `joined`, connect without one so
  // the server's default room is joined too, not replaced by the first of `rooms`.
  #defaultRoom = false
  // The room that rode in the current socket's URL; the others join after welcome.
  #urlRoom: string | undefined
  #joined = new Set<string>()
  // Direct rooms, with the other user: rejoined with `with`, not by name,
  // since a server that forgot the pair refuses a direct room's name.
  #directs = new Map<string, User>()
  // openDirect() calls not answered by a `joined` yet, user id -> the join's
  // cid: asked again after a reconnect, and dropped when the server refuses.
  #directAsks = new Map<string, string>()
  // Joins the server answered `unavailable` (its Redis away, say), asked
  // again on this socket after a backoff of their own: per room, the
  // retries so far and the pending timer.
  #retries = new Map<string, { attempt: number, timer: ReturnType<typeof setTimeout> }>()
  // Joins asked for on the current socket and not answered yet, per room: a
  // `joined` beyond them, for a room already joined, is the server starting it over.
  #asked = new Map<string, number>()
  #cursors = new Map<string, Since>()
  #queue: SendFrame[] = []
  // Sent on a socket but not yet seen back: if that socket drops, they go out
  // again with the same cid, and the server's cid memory keeps them single.
  #inFlight = new Map<string, SendFrame>()
  #rosters = new Map<string, Roster>()
  // members() requests waiting for their page, by cid; a socket that drops fails them.
  #pages = new Map<string, { resolve: (page: MembersFrame) => void, reject: (err: MembersError) => void, timer: ReturnType<typeof setTimeout> }>()

  constructor (url: string | URL, opts: ConnectOptions = {}) {
    const Socket = opts.WebSocket ?? globalThis.WebSocket
    if (typeof Socket !== 'function') {
      throw new TypeError('no global WebSocket: pass { WebSocket } from the "ws" package')
    }
    this.#WebSocket = Socket
    this.#backoff = { initialMs: opts.backoff?.initialMs ?? 250, maxMs: opts.backoff?.maxMs ?? 10_000 }
    if (!(this.#backoff.initialMs > 0) || !(this.#backoff.maxMs >= this.#backoff.initialMs)) {
      throw new TypeError('backoff needs 0 < initialMs <= maxMs')
    }
    this.#maxQueue = opts.maxQueue ?? 100
    if (!Number.isInteger(this.#maxQueue) || this.#maxQueue < 0) throw new TypeError('maxQueue must be an integer >= 0')
    if (opts.params !== undefined && typeof opts.params !== 'function') throw new TypeError('params must be a function')
    this.#params = opts.params

    // Relative URLs ('/chat') resolve against the page, with http(s) turned into ws(s).
    this.#url = new URL(url, globalThis.location?.href)
    this.#url.protocol = this.#url.protocol.replace(/^http/, 'ws')
    const params = this.#url.searchParams
    this.#name = opts.name ?? params.get('name')
    this.#resume = opts.resume ?? params.get('resume')
    const first = params.get('room')
    this.#defaultRoom = first === null
    if (first !== null) {
      this.#wanted.add(checkRoom(first))
      const since = params.get('since') ?? ''
      const sep = since.lastIndexOf(':')
      if (sep > 0) this.#cursors.set(first, { epoch: since.slice(0, sep), offset: Number(since.slice(sep + 1)) || 0 })
    }
    for (const room of opts.rooms ?? []) this.#wanted.add(checkRoom(room))
    this.#open()
  }

  get status (): ConnectionStatus { return this.#status }
  /** This user's id, from `welcome`; kept across reconnects. */
  get id (): string | null { return this.#id }
  /** This socket's id, from `welcome` (what `app.chat.disconnect({ clientId })` takes); each reconnect gets a new one. */
  get clientId (): string | null { return this.#clientId }
  /** When the session ends unless refreshed (milliseconds since the Unix epoch), from `welcome` or `refreshed`; `null` when it does not. */
  get expiresAt (): number | null { return this.#expiresAt }
  get name (): string | null { return this.#name }
  /**
   * Pass it as `resume` to a later {@link connect} to be the same user there.
   * The latest from `welcome` (before the first, the `resume` given); `null`
   * when there is none, as when the server's `identify` gives the id.
   */
  get resumeToken (): string | null { return this.#resume }
  /** Rooms the server has confirmed with `joined` on the current socket, direct rooms too. */
  get rooms (): string[] { return [...this.#joined] }
  /**
   * Direct conversations, room -> the other user: opened with
   * {@link openDirect} or by the other user's message, and kept across
   * reconnects until left, removed or refused.
   */
  get directs (): Map<string, User> { return new Map(this.#directs) }

  /**
   * What this client knows of the users of `room` (`undefined` when not in
   * it): the server's `count`, and the users of its `joined`, of the pages
   * fetched since, and of the presence events. While the room sends
   * `occupancy` instead of presence events, `users` may still list some who
   * left and miss some who came; page again to catch up.
   */
  presence (room: string): RoomPresence | undefined {
    const roster = this.#rosters.get(room)
    return roster === undefined ? undefined : { count: roster.count, users: [...roster.users.values()], more: hasMore(roster) }
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
    if (this.#status === 'open') {
      this.#sendMessage(frame)
    } else if (this.#queue.length >= this.#maxQueue) {
      throw new Error(`chat send queue is full (${this.#maxQueue} messages waiting for the connection)`)
    } else {
      this.#queue.push(frame)
    }
    return cid
  }

  join (room: string): void {
    this.#wanted.add(checkRoom(room))
    if (this.#status === 'open') this.#join(room)
  }

  leave (room: string): void {
    // A join may still be on its way, so a wanted room is left even before its `joined`.
    const wanted = this.#wanted.delete(room)
    const direct = this.#directs.delete(room)
    this.#stopRetries(room)
    if (this.#status === 'open' && (wanted || direct || this.#joined.has(room))) this.#write({ type: 'leave', room })
  }

  /**
   * Opens the direct conversation with user `userId` (their id, not their
   * name): the answer is a `joined` with `with`, and the room is in
   * {@link directs} from then on. Sent once open, when not yet. Returns the
   * join's `cid`, which an `error` for it (`forbidden`, say) carries.
   */
  openDirect (userId: string): string {
    const cid = randomCid()
    this.#directAsks.set(checkUserId(userId), cid)
    if (this.#status === 'open') this.#joinDirect(userId, this.#directRoomOf(userId), cid)
    return cid
  }

  /**
   * Extends the session with a fresh token, for the server's `refresh`
   * option: `refreshed` follows, or the server closes with 4001 and the
   * client reconnects with `params`. Does nothing while not open: the next
   * connection identifies afresh.
   */
  refresh (token: string): void {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      throw new TypeError(`a token must be a string of 1 to ${MAX_TOKEN_LENGTH} characters`)
    }
    if (this.#status === 'open') this.#write({ type: 'refresh', token })
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
    const { after, limit } = checkPage(page)
    const frame: MembersRequest = { type: 'members', room: checkRoom(room), cid: randomCid() }
    if (after !== undefined) frame.after = after
    if (limit !== undefined) frame.limit = limit
    if (this.#status !== 'open') throw membersError('not_open', `chat connection is ${this.#status}`)
    const cid = frame.cid as string
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#answerPage(cid, membersError('timeout', 'no members page within 10 s')), MEMBERS_TIMEOUT_MS)
      this.#pages.set(cid, { resolve, reject, timer })
      this.#write(frame)
    })
  }

  /**
   * Fetches the next page of the users of `room` into {@link presence}:
   * `limit` users (default the server's page size) after the last page it
   * loaded, or from the first when it loaded none yet or the last one was
   * the end (the list is then refreshed). Resolves with whether more are
   * left, as `presence(room).more` says.
   */
  async loadMembers (room: string, limit?: number): Promise<boolean> {
    const roster = this.#rosters.get(room)
    if (roster === undefined) throw membersError('not_in_room', `not in room ${JSON.stringify(room)}`)
    checkPage({ limit })
    const known = roster.users.size
    // From the start (a joined without `next` listed everyone then, but the
    // room grew since), the first users are the ones already known: ask
    // past them, so that each call brings users not shown yet.
    if (roster.after === undefined && known > 0) limit = Math.min(MAX_MEMBERS_PAGE, known + (limit ?? known))
    const page = await this.members(room, { after: roster.after, limit })
    // A rejoin while the page was on its way started a new list, whose paging starts over.
    if (this.#rosters.get(room) === roster) roster.after = page.next
    const now = this.#rosters.get(room)
    return now !== undefined && hasMore(now)
  }

  /** Asks for a new name; while not open it is used on the next connect. */
  rename (name: string): void {
    if (this.#status === 'open') this.#write({ type: 'name', name })
    else this.#name = name
  }

  /** Stops for good: no reconnect, no timer, queued messages dropped; emits `closed` with 1000. */
  close (): void {
    if (this.#status === 'closed') return
    const socket = this.#socket
    this.#socket = null
    socket?.close(1000, 'client closed')
    this.#end({ code: 1000, reason: 'client closed' })
  }

  #end (why: ClosedEvent): void {
    clearTimeout(this.#timer)
    this.#stopRetries()
    this.#failPages()
    this.#queue = []
    this.#inFlight.clear()
    this.#joined.clear()
    this.#rosters.clear()
    this.#setStatus('closed')
    this.#events.emit('closed', why)
  }

  #setStatus (status: ConnectionStatus): void {
    if (status === this.#status) return
    this.#status = status
    this.#events.emit('status', status)
  }

  #write (frame: ClientFrame): void {
    this.#socket?.send(JSON.stringify(frame))
  }

  #sendMessage (frame: SendFrame): void {
    this.#inFlight.set(frame.cid as string, frame)
    // Bounded like the queue; the oldest is the likeliest to have arrived.
    if (this.#inFlight.size > this.#maxQueue) this.#inFlight.delete(this.#inFlight.keys().next().value as string)
    this.#write(frame)
  }

  #settled (cid: string | undefined): void {
    if (cid !== undefined) this.#inFlight.delete(cid)
  }

  #join (room: string): void {
    this.#asked.set(room, (this.#asked.get(room) ?? 0) + 1)
    const since = this.#cursors.get(room)
    this.#write(since === undefined ? { type: 'join', room } : { type: 'join', room, since: { ...since } })
  }

  /** Joins the direct room with `userId`; `room`, when known, resumes it where it stopped. */
  #joinDirect (userId: string, room: string | undefined, cid?: string): void {
    const frame: JoinFrame = { type: 'join', with: userId }
    if (room !== undefined) {
      this.#asked.set(room, (this.#asked.get(room) ?? 0) + 1)
      const since = this.#cursors.get(room)
      if (since !== undefined) frame.since = { ...since }
    }
    if (cid !== undefined) frame.cid = cid
    this.#write(frame)
  }

  #directRoomOf (userId: string): string | undefined {
    for (const [room, user] of this.#directs) if (user.id === userId) return room
    return undefined
  }

  /** Opens a socket, once the app's `params` (if any) are in; a failing `params` is a failed attempt. */
  #open (): void {
    if (this.#params === undefined) return this.#dial({})
    let params
    try {
      params = this.#params()
    } catch {
      return this.#dropped()
    }
    if (!isThenable(params)) return this.#dial(params)
    // A `params` that never settles would leave the client waiting for good:
    // past the wait it is a failed attempt, and what it resolves to later is dropped.
    let settled = false
    const settle = (then: () => void): void => {
      if (settled) return
      settled = true
      clearTimeout(this.#timer)
      if (this.#status !== 'closed') then()
    }
    this.#timer = setTimeout(() => settle(() => this.#dropped()), PARAMS_TIMEOUT_MS)
    Promise.resolve(params).then(
      (resolved) => settle(() => this.#dial(resolved)),
      () => settle(() => this.#dropped())
    )
  }

  #dial (extra: Params): void {
    if (typeof extra !== 'object' || extra === null) return this.#dropped()
    const url = new URL(this.#url)
    const params = url.searchParams
    for (const [key, value] of Object.entries(extra)) params.set(key, String(value))
    if (this.#name !== null) params.set('name', this.#name)
    params.delete('room')
    params.delete('since')
    params.delete('resume')
    if (this.#resume !== null) params.set('resume', this.#resume)
    // The first room joins with the upgrade itself; the server's default room applies when there is none.
    const first = this.#defaultRoom ? undefined : this.#wanted.values().next().value
    this.#urlRoom = first
    this.#asked = new Map<string, number>(first === undefined ? [] : [[first, 1]])
    if (first !== undefined) {
      params.set('room', first)
      const since = this.#cursors.get(first)
      if (since !== undefined) params.set('since', `${since.epoch}:${since.offset}`)
    }

    const socket = new this.#WebSocket(url.href)
    this.#socket = socket
    socket.onmessage = (event: { data: unknown }) => {
      if (socket === this.#socket && typeof event.data === 'string') this.#receive(event.data)
    }
    socket.onclose = (event: { code?: number, reason?: string }) => {
      if (socket === this.#socket) this.#closed(event.code ?? ABNORMAL, event.reason ?? '')
    }
    // An error is always followed by close, which does the work.
    socket.onerror = () => {}
  }

  #closed (code: number, reason: string): void {
    this.#socket = null
    // Nothing would make a new attempt succeed: the app threw this client
    // out, or its credentials expired and there is no way to get fresh ones.
    if (code === DISCONNECTED || (code === SESSION_EXPIRED && this.#params === undefined)) {
      return this.#end({ code, reason })
    }
    this.#dropped()
  }

  /** Waits the backoff, then tries again: a socket dropped, or an attempt failed before one opened. */
  #dropped (): void {
    this.#socket = null
    this.#stopRetries()
    this.#failPages()
    this.#joined.clear()
    this.#setStatus('reconnecting')
    // Full jitter from the very first retry: a server restart drops a whole
    // room at once, and any fixed first delay would bring it back all at once.
    const ceiling = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** this.#attempt++)
    this.#timer = setTimeout(() => this.#open(), Math.random() * ceiling)
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
        this.#joined.delete(frame.room)
        this.#wanted.delete(frame.room)
        this.#directs.delete(frame.room)
        this.#rosters.delete(frame.room)
        this.#stopRetries(frame.room)
        return this.#events.emit('left', frame)
      case 'renamed':
        this.#name = frame.name
        // Presence tells the others; this client's own entries follow here.
        for (const { users } of this.#rosters.values()) {
          if (this.#id !== null && users.has(this.#id)) users.set(this.#id, { id: this.#id, name: frame.name })
        }
        return this.#events.emit('renamed', frame)
      case 'presence': {
        const users = this.#rosters.get(frame.room)?.users
        if (frame.event === 'leave') users?.delete(frame.user.id)
        else users?.set(frame.user.id, frame.user)
        this.#setCount(frame.room, frame.count)
        return this.#events.emit('presence', frame)
      }
      case 'occupancy': return this.#setCount(frame.room, frame.count)
      case 'members': return this.#onMembers(frame)
      case 'refreshed':
        this.#expiresAt = frame.expiresAt
        return this.#events.emit('refreshed', frame)
      case 'error':
        // A members() request's error is its promise's to tell.
        if (this.#answerPage(frame.cid, membersError(frame.code, frame.message))) return
        this.#onError(frame)
        return this.#events.emit('error', frame)
    }
  }

  #setCount (room: string, count: number): void {
    const roster = this.#rosters.get(room)
    if (roster === undefined || roster.count === count) return
    roster.count = count
    this.#events.emit('count', { room, count })
  }

  #onMembers (frame: MembersFrame): void {
    const users = this.#rosters.get(frame.room)?.users
    if (users !== undefined) for (const user of frame.users) users.set(user.id, user)
    this.#setCount(frame.room, frame.count)
    this.#answerPage(frame.cid, frame)
    this.#events.emit('members', frame)
  }

  /** Settles the members() request `cid`, if one waits; says whether one did. */
  #answerPage (cid: string | undefined, answer: MembersFrame | MembersError): boolean {
    const pending = cid === undefined ? undefined : this.#pages.get(cid)
    if (pending === undefined) return false
    this.#pages.delete(cid as string)
    clearTimeout(pending.timer)
    if (answer instanceof Error) pending.reject(answer)
    else pending.resolve(answer)
    return true
  }

  #failPages (): void {
    for (const cid of [...this.#pages.keys()]) this.#answerPage(cid, membersError('closed', 'the socket closed before the page came'))
  }

  #onError (frame: ErrorFrame): void {
    const { cid, code, room } = frame
    this.#settled(cid)
    let direct: string | undefined
    for (const [userId, asked] of this.#directAsks) if (asked === cid) direct = userId
    // Asking again would get the same answer.
    if (direct !== undefined && (code === 'forbidden' || code === 'invalid_message')) this.#directAsks.delete(direct)
    // A refused publish is `forbidden` too, with the message's cid: the room
    // stays. Joins carry no cid, but openDirect's.
    const aboutJoin = room !== undefined && (cid === undefined || direct !== undefined)
    if (code === 'unavailable' && aboutJoin) this.#retryJoin(room, direct)
    if (code === 'forbidden' && aboutJoin) {
      this.#wanted.delete(room)
      this.#directs.delete(room)
      this.#joined.delete(room)
      this.#rosters.delete(room)
      this.#asked.delete(room)
    }
  }

  /** Asks again, after a backoff, for a join of `room` (or the direct room with `userId`) that the server could not serve. */
  #retryJoin (room: string, userId: string | undefined): void {
    // That join gets no `joined`: an unasked one later would be a reset.
    const asked = this.#asked.get(room) ?? 0
    if (asked > 1) this.#asked.set(room, asked - 1)
    else this.#asked.delete(room)
    const retry = this.#retries.get(room)
    clearTimeout(retry?.timer)
    const attempt = retry?.attempt ?? 0
    const ceiling = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** attempt)
    const socket = this.#socket
    const timer = setTimeout(() => {
      // On another socket every room is asked for again anyway.
      if (socket !== this.#socket || this.#status !== 'open' || this.#joined.has(room)) return
      const direct = this.#directs.get(room)?.id ?? userId
      if (direct !== undefined) this.#joinDirect(direct, this.#directs.has(room) ? room : undefined, this.#directAsks.get(direct))
      else if (this.#wanted.has(room)) this.#join(room)
    }, Math.random() * ceiling)
    this.#retries.set(room, { attempt: attempt + 1, timer })
  }

  #stopRetries (room?: string): void {
    for (const [name, retry] of this.#retries) {
      if (room !== undefined && name !== room) continue
      clearTimeout(retry.timer)
      this.#retries.delete(name)
    }
  }

  #welcome (frame: WelcomeFrame): void {
    this.#attempt = 0
    this.#id = frame.id
    this.#clientId = frame.clientId
    this.#expiresAt = frame.expiresAt ?? null
    this.#name = frame.name
    this.#resume = frame.resume ?? null
    this.#events.emit('welcome', frame)
    if (this.#status === 'closed') return
    // The server handles one socket's frames in order, so these joins are done
    // before the queued messages that follow them.
    for (const room of this.#wanted) if (room !== this.#urlRoom) this.#join(room)
    for (const [room, user] of this.#directs) this.#joinDirect(user.id, room)
    for (const [userId, cid] of this.#directAsks) if (this.#directRoomOf(userId) === undefined) this.#joinDirect(userId, undefined, cid)
    for (const unclear of [...this.#inFlight.values()]) this.#write(unclear)
    for (const queued of this.#queue.splice(0)) this.#sendMessage(queued)
    this.#setStatus('open')
  }

  #onJoined (frame: JoinedFrame): void {
    this.#stopRetries(frame.room)
    for (const message of frame.history) this.#settled(message.cid)
    const asked = this.#asked.get(frame.room) ?? 0
    if (asked > 1) this.#asked.set(frame.room, asked - 1)
    else this.#asked.delete(frame.room)
    // Not asked for: the room's history changed under the server, so the offsets seen so far mean nothing.
    const reset = asked === 0 && this.#joined.has(frame.room)
    const seen = this.#cursors.get(frame.room)
    let history = frame.history
    if (!reset && frame.recovered && seen !== undefined && seen.epoch === frame.epoch) {
      // A join while already in the room can replay what has arrived live since the join was sent.
      history = history.filter((m) => m.offset > seen.offset)
      this.#cursors.set(frame.room, { epoch: frame.epoch, offset: Math.max(seen.offset, frame.offset) })
    } else {
      this.#cursors.set(frame.room, { epoch: frame.epoch, offset: frame.offset })
    }
    this.#defaultRoom = false
    if (frame.with !== undefined) {
      // Asked for with openDirect, or added by the server when the other user wrote.
      this.#directs.set(frame.room, frame.with)
      this.#directAsks.delete(frame.with.id)
    }
    if (!this.#directs.has(frame.room)) this.#wanted.add(frame.room)
    else this.#wanted.delete(frame.room)
    this.#joined.add(frame.room)
    const before = this.#rosters.get(frame.room)?.count
    const users = new Map(frame.users.map((user) => [user.id, user]))
    this.#rosters.set(frame.room, { count: frame.count, users, after: frame.next })
    if (reset) this.#events.emit('reset', frame)
    this.#events.emit('joined', history === frame.history ? frame : { ...frame, history })
    if (before !== frame.count) this.#events.emit('count', { room: frame.room, count: frame.count })
  }

  #onMessage (frame: MessageFrame): void {
    this.#settled(frame.cid)
    const seen = this.#cursors.get(frame.room)
    if (seen !== undefined) {
      if (frame.offset <= seen.offset) return
      seen.offset = frame.offset
    }
    this.#events.emit('message', frame)
  }
}

/** Opens a chat connection to `url` (`ws://host/chat?room=lobby`, or `/chat` in a page). */
export function connect (url: string | URL, opts?: ConnectOptions): ChatConnection {
  return new ChatConnection(url, opts)
}
