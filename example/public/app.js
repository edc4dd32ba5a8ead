/* global document, fetch, setTimeout, clearTimeout, window */
// The example page. Every piece of user text goes through textContent: names,
// room names and messages come from other people.
import { connect, ROOM_PATTERN } from '/chat/client.js'
import { RoomLog } from './room-log.js'
import { isStaff, moderate } from './staff.js'
import { loadSession, savedName, saveName, saveSession, userKey } from './storage.js'
import { actionButton, element, messageItem, pendingItem, typingText } from './view.js'

// Older messages asked for at a time when scrolling back.
const OLDER_PAGE = 50
// Least time between two read positions sent.
const READ_EVERY_MS = 1000
// How close to the top of the list (in pixels) scrolling starts loading older messages.
const LOAD_WITHIN = 40
// The counter shows up once a message has used this share of the limit.
const COUNTER_FROM = 0.8

const $ = (id) => document.getElementById(id)
const ui = {
  status: $('status'),
  notice: $('notice'),
  nameForm: $('name-form'),
  nameInput: $('name-input'),
  roomList: $('room-list'),
  joinForm: $('join-form'),
  roomInput: $('room-input'),
  roomTitle: $('room-title'),
  leave: $('leave'),
  messages: $('messages'),
  typing: $('typing'),
  composing: $('composing'),
  composingText: $('composing-text'),
  cancelComposing: $('cancel-composing'),
  sendForm: $('send-form'),
  textInput: $('text-input'),
  sendButton: document.querySelector('#send-form button'),
  counter: $('counter'),
  users: $('users'),
  onlineTitle: $('online-title'),
  moreUsers: $('more-users'),
  staffTools: $('staff-tools'),
  reasonInput: $('reason-input')
}

/**
 * room name -> { log: RoomLog, pending: Map<cid, message> }; who is in it,
 * who is typing there and how much is unread, the client keeps.
 */
const rooms = new Map()
let current = null
// A reply or an edit being written: { mode: 'reply' | 'edit', room, message }; null for a new message.
let composing = null
// A room the user asked to join (or was in before a reload): we switch to it once the server confirms.
let switchTo = null
// The user whose direct conversation this page asked to open: we switch to it once the server confirms.
let directTo = null
// Whether the server took this page's staff token (see /staff/check): it then shows remove and kick.
let staff = false
// Longest message the server takes, in code points like the server counts; from /settings.json.
let maxLength = Infinity

// ?name= and ?room= in the page's address pick the name and first room, so a link can share them;
// ?staff= carries the staff token, which the socket and the moderation routes check.
const params = new URLSearchParams(window.location.search)
const session = loadSession()
const linkRoom = params.get('room')
const staffToken = params.get('staff')
const isRoom = (room) => typeof room === 'string' && ROOM_PATTERN.test(room)
// Direct rooms are named after a hash of the two ids: the server only lets them be
// reopened by naming the other user, which is what a reload does (see `directs`).
const isDirect = (room) => room.startsWith('dm-')
// The rooms this tab is in, in order: kept across a reload, so it joins them all again.
const memberOf = new Set(Array.isArray(session.rooms) ? session.rooms.filter((room) => isRoom(room) && !isDirect(room)) : [])
const isUser = (user) => typeof user?.id === 'string' && typeof user.name === 'string'
/** Direct room name -> the other user ({ id, name }): reopened with openDirect after a reload. */
const directs = new Map(Array.isArray(session.direct)
  ? session.direct.filter((entry) => isRoom(entry?.room) && isUser(entry.with)).map((entry) => [entry.room, entry.with])
  : [])
if (isRoom(linkRoom) && !memberOf.has(linkRoom)) {
  memberOf.add(linkRoom)
  switchTo = linkRoom
} else if (isRoom(session.current)) {
  switchTo = session.current
}
const [firstRoom, ...otherRooms] = memberOf
// The first room rides in the URL; without one the server's default room is joined.
const socketQuery = new URLSearchParams()
if (firstRoom !== undefined) socketQuery.set('room', firstRoom)
if (staffToken !== null) socketQuery.set('staff', staffToken)
const key = userKey()
if (key !== null) socketQuery.set('key', key)
const chat = connect(socketQuery.toString() === '' ? '/chat' : `/chat?${socketQuery}`, {
  name: params.get('name') ?? savedName(),
  rooms: otherRooms,
  // The same user id as before the reload, so nobody sees us twice.
  resume: typeof session.resume === 'string' ? session.resume : undefined
})

function remember () {
  // Before welcome and the first joined, what the last page saved still holds.
  const state = {
    resume: chat.resumeToken ?? session.resume,
    rooms: [...memberOf],
    direct: [...directs].map(([room, other]) => ({ room, with: other })),
    current: current ?? switchTo
  }
  saveSession(state)
}

function roomState (name) {
  let room = rooms.get(name)
  if (room === undefined) {
    room = { log: new RoomLog(), pending: new Map() }
    rooms.set(name, room)
  }
  return room
}

/**
 * The name the page sees `user` under in its rooms now, else the one given:
 * presence keeps the rooms' names current, while a server that has not met
 * the other user of a direct room yet may only know their id.
 */
function seenName (user) {
  for (const name of rooms.keys()) {
    const seen = chat.presence(name)?.users.find((other) => other.id === user.id)
    if (seen !== undefined) return seen.name
  }
  return user.name
}

/** What the page calls a room: a direct one by the other user's name. */
function roomLabel (name) {
  return directs.get(name)?.name ?? name
}

/** Forgets a room the page is no longer in, and shows another if it was the one shown. */
function dropRoom (name) {
  rooms.delete(name)
  memberOf.delete(name)
  directs.delete(name)
  if (switchTo === name) switchTo = null
  if (name === current || current === null) {
    show(rooms.keys().next().value ?? null)
  } else {
    renderRooms()
    remember()
  }
}

function renderRooms () {
  ui.roomList.replaceChildren(...[...rooms].map(([name, room]) => {
    const direct = directs.has(name)
    const button = element('button', direct ? 'room direct' : 'room', roomLabel(name))
    button.type = 'button'
    button.dataset.room = name
    if (direct) button.title = `Direct conversation with ${roomLabel(name)}`
    if (name === current) button.setAttribute('aria-current', 'true')
    const unread = chat.unread(name)?.unread ?? 0
    if (unread > 0) button.append(element('span', 'badge', String(unread)))
    button.addEventListener('click', () => show(name))
    const item = element('li')
    item.append(button)
    return item
  }))
}

/** One entry of the online list: another user's name opens a direct conversation; staff get remove and kick. */
function userItem (user) {
  const item = element('li', user.id === chat.id ? 'me' : '')
  item.dataset.id = user.id
  if (user.id === chat.id) {
    item.append(element('span', 'name', user.name))
    return item
  }
  item.append(actionButton('name', user.name, `Talk to ${user.name} privately`, () => openDirect(user)))
  if (staff) {
    const room = current
    const tools = element('span', 'tools')
    tools.append(
      actionButton('remove', 'remove', `Remove ${user.name} from ${roomLabel(room)}`, () => staffAction('remove', { room, userId: user.id })),
      actionButton('kick', 'kick', `Disconnect ${user.name} everywhere`, () => staffAction('kick', { userId: user.id }))
    )
    item.append(tools)
  }
  return item
}

/**
 * The online list of the room shown: its count, and the users the client
 * knows of. A big room lists a page of them; "more" fetches the next.
 */
function renderUsers () {
  const presence = current === null ? undefined : chat.presence(current)
  const users = presence?.users ?? []
  users.sort((a, b) => a.name.localeCompare(b.name))
  ui.users.replaceChildren(...users.map(userItem))
  ui.onlineTitle.textContent = presence === undefined ? 'Online' : `${presence.count} online`
  ui.moreUsers.hidden = presence?.more !== true
  if (presence !== undefined) ui.moreUsers.textContent = `Show more (${users.length} of ${presence.count} shown)`
}

/** What a message item needs from the page: who the user is, the messages held, and the buttons' actions. */
const itemPage = {
  get me () { return chat.id },
  get name () { return chat.name ?? 'you' },
  held: (offset) => current === null ? undefined : rooms.get(current)?.log.get(offset),
  reply: (message) => compose('reply', message),
  edit: (message) => compose('edit', message),
  delete: (message) => {
    if (current === null) return
    if (composing?.message.offset === message.offset) compose(null)
    try {
      chat.delete(current, message.offset)
    } catch (err) {
      notify(`Sorry, the message was not deleted: ${err.message}`)
    }
  }
}

function isAtBottom () {
  const list = ui.messages
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40
}

/**
 * Shows the room's messages, delivered then pending. `keep` says what stays
 * in place: 'end' scrolls to the latest; 'top' keeps the scroll offset (what
 * changed is below, or in place); 'bottom' keeps the distance from the end
 * (older messages came in above).
 */
function renderMessages (keep = 'end') {
  const room = current === null ? undefined : rooms.get(current)
  const list = ui.messages
  const { scrollTop } = list
  const fromEnd = list.scrollHeight - scrollTop
  list.replaceChildren(...(room === undefined
    ? []
    : [
        ...(room.log.more ? [olderItem] : []),
        ...room.log.messages.map((message) => messageItem(message, itemPage)),
        ...[...room.pending.values()].map((message) => pendingItem(message, itemPage))
      ]))
  renderOlder()
  if (keep === 'end') list.scrollTop = list.scrollHeight
  else if (keep === 'bottom') list.scrollTop = list.scrollHeight - fromEnd
  else list.scrollTop = scrollTop
}

// Atop the list while older messages may be kept: for a room too short to scroll, and for keyboards.
// Inside the list, so it scrolls away with the messages and its going moves nothing shown.
const olderButton = actionButton('older', 'Load older messages', 'Load older messages', () => { if (current !== null) loadOlder(current) })
const olderItem = element('li', 'older-item')
olderItem.append(olderButton)

function renderOlder () {
  const loading = current !== null && rooms.get(current)?.log.loading === true
  olderButton.disabled = loading
  olderButton.textContent = loading ? 'Loading older messages…' : 'Load older messages'
}

/**
 * Asks for the page before the oldest entry the room holds. Not loadOlder():
 * that pages from the oldest the client was given, while the page lets its
 * oldest messages go when it holds too many, and must ask from its own edge.
 */
async function loadOlder (name) {
  const log = rooms.get(name)?.log
  if (log === undefined || !log.more || log.loading || chat.status !== 'open') return
  const { generation, epoch } = log
  log.loading = true
  if (name === current) renderOlder()
  try {
    const page = await chat.history(name, { before: log.edge, limit: OLDER_PAGE })
    // The room started over while the page was on its way: it continues nothing shown.
    if (rooms.get(name)?.log !== log || log.generation !== generation || page.epoch !== epoch) return
    log.older(page)
    if (name === current) renderMessages('bottom')
  } catch (err) {
    notify(`Sorry, older messages did not load: ${err.message}`)
  } finally {
    log.loading = false
    if (name === current) renderOlder()
  }
}

function renderTyping () {
  ui.typing.textContent = current === null ? '' : typingText(chat.typingIn(current))
}

/** Starts a reply to `message` or an edit of it (mode 'reply' or 'edit'), or stops either (mode null). */
function compose (mode, message) {
  const editing = composing?.mode === 'edit'
  composing = mode === null || current === null ? null : { mode, room: current, message }
  ui.composing.hidden = composing === null
  if (composing !== null) {
    ui.composingText.replaceChildren(
      element('span', 'composing-what', mode === 'edit' ? 'Editing your message' : `Replying to ${message.from.name}: `),
      ...(mode === 'edit' ? [] : [element('span', 'composing-quote', message.text)])
    )
  }
  ui.sendButton.textContent = mode === 'edit' ? 'Save' : 'Send'
  if (mode === 'edit') ui.textInput.value = message.text
  else if (editing) ui.textInput.value = ''
  if (mode !== null) ui.textInput.focus()
  renderComposer()
}

let readTimer = null
/**
 * Marks the room shown read while the tab is seen and something in it is
 * unread: the server keeps it, and the user's other tabs clear their badge.
 * At most once per READ_EVERY_MS, then once more for what came meanwhile:
 * a busy room must not spend the socket's rate limit on reads.
 */
function markRead () {
  if (readTimer !== null || current === null || document.visibilityState !== 'visible') return
  if ((chat.unread(current)?.unread ?? 0) === 0) return
  chat.read(current)
  readTimer = setTimeout(() => {
    readTimer = null
    markRead()
  }, READ_EVERY_MS)
}

function renderComposer () {
  // Open while reconnecting too: what is typed then waits in the client's queue.
  const disabled = chat.status === 'closed' || current === null
  // Code points, as the server counts them: an emoji is one character.
  const length = [...ui.textInput.value].length
  const over = length > maxLength
  ui.counter.hidden = length < maxLength * COUNTER_FROM
  ui.counter.textContent = over ? `${length - maxLength} characters too many (limit ${maxLength})` : `${maxLength - length} characters left`
  ui.counter.classList.toggle('over', over)
  ui.textInput.setAttribute('aria-invalid', String(over))
  ui.textInput.disabled = disabled
  ui.sendButton.disabled = disabled || over
  ui.leave.disabled = current === null
}

function show (name) {
  if (name !== current && composing !== null) compose(null)
  current = name
  ui.roomTitle.textContent = name === null ? 'No room' : roomLabel(name)
  markRead()
  renderRooms()
  renderMessages()
  renderUsers()
  renderTyping()
  renderComposer()
  remember()
}

let noticeTimer
/** Shows `text` for a while, or until the page is left when `sticky`. */
function notify (text, sticky = false) {
  ui.notice.textContent = text
  ui.notice.hidden = false
  clearTimeout(noticeTimer)
  if (!sticky) noticeTimer = setTimeout(() => { ui.notice.hidden = true }, 6000)
}

function openDirect (user) {
  const open = [...directs].find(([, other]) => other.id === user.id)
  if (open !== undefined && rooms.has(open[0])) return show(open[0])
  try {
    directTo = user.id
    chat.openDirect(user.id)
  } catch (err) {
    directTo = null
    notify(`Sorry, ${err.message}`)
  }
}

/** Asks the server to remove or kick a user; the reason typed in the staff box goes along. */
function staffAction (action, body) {
  moderate(staffToken, action, body, ui.reasonInput.value.trim()).catch((err) => notify(`Sorry, that did not work: ${err.message}`))
}

chat.on('status', (status) => {
  ui.status.textContent = status
  ui.status.dataset.status = status
  renderComposer()
})

chat.on('closed', ({ code, reason }) => {
  // The server closed this page for good (a kick, say): the client does not reconnect.
  const why = reason === '' ? `code ${code}` : reason
  notify(`You were disconnected by the server (${why}). Reload the page to come back.`, true)
  // No presence reaches a closed page: the client has forgotten who was online.
  renderUsers()
})

chat.on('welcome', ({ name }) => {
  if (document.activeElement !== ui.nameInput) ui.nameInput.value = name
  remember()
})

chat.on('renamed', ({ name }) => {
  saveName(name)
  ui.nameInput.value = name
  // The client has renamed our own entries; presence tells everyone else.
  renderUsers()
})

chat.on('joined', (frame) => {
  const room = roomState(frame.room)
  // recovered: history is exactly what we missed. Otherwise a gap is possible
  // and history is the latest page, so it replaces what we had.
  room.log.joined(frame)
  // A message whose echo a dropped socket lost comes back in the history instead.
  for (const message of frame.history) room.pending.delete(message.cid)
  // A direct room: one this page opened, or one the other user wrote in first.
  if (frame.with !== undefined) directs.set(frame.room, { id: frame.with.id, name: seenName(frame.with) })
  else memberOf.add(frame.room)
  const asked = switchTo === frame.room || (directTo !== null && frame.with?.id === directTo)
  // Not a room that comes first while the one to show is on its way: showing it would mark it read.
  const first = current === null && (switchTo === null || !(memberOf.has(switchTo) || directs.has(switchTo)))
  if (first || asked || current === frame.room) {
    if (switchTo === frame.room) switchTo = null
    if (asked) directTo = null
    show(frame.room)
  } else {
    renderRooms()
    remember()
  }
})

chat.on('message', (message) => {
  const room = roomState(message.room)
  room.pending.delete(message.cid)
  room.log.add(message)
  if (message.room !== current) return
  markRead()
  // Delivered messages stay above the ones still pending, in the server's order.
  renderMessages(isAtBottom() || message.from.id === chat.id ? 'end' : 'top')
})

/** An edit or a delete: the message changes in place, and so do the replies quoting it. */
function amended (frame) {
  const changed = rooms.get(frame.room)?.log.add(frame)
  if (changed === null || changed === undefined) return
  if (composing?.room === frame.room && composing.message.offset === frame.of && frame.type === 'delete') compose(null)
  if (frame.room === current) renderMessages(isAtBottom() ? 'end' : 'top')
}
chat.on('edit', amended)
chat.on('delete', amended)

chat.on('typing', ({ room }) => { if (room === current) renderTyping() })

// Counts from the server's joined, kept current by the client: new messages, this tab's reads, the user's other tabs.
chat.on('unread', ({ room, unread }) => {
  if (room === current && unread > 0) markRead()
  if (rooms.has(room)) renderRooms()
})

document.addEventListener('visibilitychange', markRead)

chat.on('presence', ({ room, event, user }) => {
  if (!rooms.has(room)) return
  // The other user of a direct room renamed: the room list follows.
  const other = directs.get(room)
  if (other !== undefined && other.id === user.id && event !== 'leave' && other.name !== user.name) {
    directs.set(room, { id: user.id, name: user.name })
    if (room === current) ui.roomTitle.textContent = user.name
    renderRooms()
    remember()
  }
  if (room === current) renderUsers()
})

// Big rooms send counts instead of presence events; pages of users come from "more".
chat.on('count', ({ room }) => { if (room === current) renderUsers() })
chat.on('members', ({ room }) => { if (room === current) renderUsers() })

chat.on('left', ({ room, reason, message }) => {
  if (reason === 'removed') {
    const label = roomLabel(room)
    notify(message === undefined ? `You were removed from ${label}.` : `You were removed from ${label}: ${message}`)
  }
  dropRoom(room)
})

chat.on('error', (frame) => {
  const failed = frame.cid === undefined ? undefined : [...rooms.values()].find((room) => room.pending.has(frame.cid))
  if (failed === undefined && frame.code === 'forbidden' && frame.room !== undefined) {
    // A join refused (a refused message has its cid among the pending): the room is not for this user.
    directTo = null
    notify(`Sorry, you may not enter ${roomLabel(frame.room)}.`)
    dropRoom(frame.room)
    return
  }
  // A typing signal or a read over the rate limit: nothing the user wrote was lost.
  if (failed === undefined && frame.code === 'rate_limited' && frame.cid === undefined) return
  if (failed === undefined) {
    notify(`Sorry, that did not work: ${frame.message}`)
    return
  }
  // The text goes back into the box, unless something else is being typed there.
  const { text, room } = failed.pending.get(frame.cid)
  failed.pending.delete(frame.cid)
  if (room === current) renderMessages('top')
  const restore = room === current && ui.textInput.value === ''
  if (restore) {
    ui.textInput.value = text
    renderComposer()
  }
  notify(`Sorry, the message was not sent: ${frame.message}${restore ? '' : ` (it was "${text}")`}`)
})

ui.nameForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const name = ui.nameInput.value.trim()
  ui.nameInput.setAttribute('aria-invalid', String(name === ''))
  if (name === '') {
    notify('Please type a name: it cannot be blank.')
    ui.nameInput.focus()
    return
  }
  chat.rename(name)
})

ui.joinForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const name = ui.roomInput.value.trim()
  ui.roomInput.value = ''
  if (rooms.has(name)) return show(name)
  try {
    switchTo = name
    chat.join(name)
  } catch (err) {
    notify(`Sorry, ${err.message}`)
  }
})

ui.leave.addEventListener('click', () => {
  if (current !== null) chat.leave(current)
})

ui.textInput.addEventListener('input', () => {
  renderComposer()
  // An edit is no news to the others; a cleared box is not typing.
  if (current !== null && composing?.mode !== 'edit' && ui.textInput.value !== '') chat.typing(current)
})

ui.textInput.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && composing !== null) compose(null)
})

ui.cancelComposing.addEventListener('click', () => compose(null))

ui.messages.addEventListener('scroll', () => {
  if (current !== null && ui.messages.scrollTop < LOAD_WITHIN) loadOlder(current)
})

ui.moreUsers.addEventListener('click', () => {
  const room = current
  if (room === null) return
  ui.moreUsers.disabled = true
  chat.loadMembers(room)
    .catch((err) => notify(`Sorry, the list did not load: ${err.message}`))
    .finally(() => {
      ui.moreUsers.disabled = false
      if (room === current) renderUsers()
    })
})

ui.sendForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const text = ui.textInput.value
  // Too long: the counter says by how much, and the text stays to be shortened.
  if (text.trim() === '' || current === null || [...text].length > maxLength) return
  if (composing?.mode === 'edit') {
    const { message } = composing
    try {
      if (text !== message.text) chat.edit(current, message.offset, text)
    } catch (err) {
      notify(`Sorry, the message was not changed: ${err.message}`)
      return
    }
    ui.textInput.value = ''
    compose(null)
    return
  }
  const of = composing?.mode === 'reply' ? composing.message.offset : undefined
  const meta = of === undefined ? undefined : { replyTo: of }
  let cid
  try {
    cid = chat.send(text, current, meta)
  } catch (err) {
    notify(`Sorry, the message was not sent: ${err.message}`)
    return
  }
  ui.textInput.value = ''
  roomState(current).pending.set(cid, meta === undefined ? { cid, room: current, text } : { cid, room: current, text, meta })
  if (composing !== null) compose(null)
  renderMessages('end')
  renderComposer()
})

if (staffToken !== null) {
  isStaff(staffToken)
    .then((ok) => {
      staff = ok
      ui.staffTools.hidden = !staff
      if (staff) renderUsers()
      else notify('That staff token was not accepted: this page has no moderation tools.')
    })
    .catch(() => notify('Could not check the staff token: this page has no moderation tools.'))
}

fetch('/settings.json')
  .then((response) => response.ok ? response.json() : null)
  .then((settings) => {
    if (Number.isInteger(settings?.maxMessageLength)) {
      maxLength = settings.maxMessageLength
      renderComposer()
    }
  })
  .catch(() => {
    // Without it the page counts nothing, and the server still refuses a message that is too long.
  })

show(null)
// A reloaded page reopens its direct conversations by naming the other user;
// the client sends them once the socket is open.
for (const other of directs.values()) chat.openDirect(other.id)
if (linkRoom !== null && !isRoom(linkRoom)) notify(`Sorry, "${linkRoom}" is not a room name: use 1 to 64 of A-Z a-z 0-9 _ -`)
