/* global document, fetch, localStorage, sessionStorage, setTimeout, clearTimeout, window */
// The example page. Every piece of user text goes through textContent: names,
// room names and messages come from other people.
import { connect, ROOM_PATTERN } from '/chat/client.js'

const NAME_KEY = 'fastify-chat.name'
// Per tab, so a reload is the same user in the same rooms while a new tab is a new guest.
const SESSION_KEY = 'fastify-chat.session'
// Enough scrollback for a demo without letting a busy room grow the page forever.
const MAX_SHOWN = 500
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

/** room name -> { messages, pending: Map<cid, message>, unread }; who is in it, the client keeps (chat.presence). */
const rooms = new Map()
let current = null
// A room the user asked to join (or was in before a reload): we switch to it once the server confirms.
let switchTo = null
// The user whose direct conversation this page asked to open: we switch to it once the server confirms.
let directTo = null
// Whether the server took this page's staff token (see /staff/check): it then shows remove and kick.
let staff = false
// Longest message the server takes, in code points like the server counts; from /settings.json.
let maxLength = Infinity

/** What a reload should bring back: { resume, rooms, current }; {} when storage is unavailable. */
function loadSession () {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY))
    return saved !== null && typeof saved === 'object' ? saved : {}
  } catch {
    return {}
  }
}

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
const chat = connect(socketQuery.toString() === '' ? '/chat' : `/chat?${socketQuery}`, {
  name: params.get('name') ?? localStorage.getItem(NAME_KEY) ?? undefined,
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
  try {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(state))
  } catch {
    // Storage full or blocked: a reload then starts afresh, nothing worse.
  }
}

function element (tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

function roomState (name) {
  let room = rooms.get(name)
  if (room === undefined) {
    room = { messages: [], pending: new Map(), unread: 0 }
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
  if (name === current) {
    show(rooms.keys().next().value ?? null)
  } else {
    renderRooms()
    remember()
  }
}

const clock = { hour: '2-digit', minute: '2-digit' }

/** The time for today's messages; older ones get the date too, and the year when it is not this one. */
function when (ts) {
  const date = new Date(ts)
  const now = new Date()
  if (date.toDateString() === now.toDateString()) return date.toLocaleTimeString([], clock)
  const day = date.getFullYear() === now.getFullYear() ? { month: 'short', day: 'numeric' } : { year: 'numeric', month: 'short', day: 'numeric' }
  return date.toLocaleString([], { ...day, ...clock })
}

function messageItem (message) {
  const item = element('li', message.from.id === chat.id ? 'message mine' : 'message')
  const time = element('time', 'time', when(message.ts))
  time.dateTime = new Date(message.ts).toISOString()
  time.title = new Date(message.ts).toLocaleString()
  item.append(element('span', 'from', message.from.name), time, element('p', 'text', message.text))
  return item
}

/** A message sent but not yet back from the server: in the client's queue, or on its way. */
function pendingItem (message) {
  const item = element('li', 'message mine pending')
  item.dataset.cid = message.cid
  item.append(element('span', 'from', chat.name ?? 'you'), element('span', 'sending', 'sending…'), element('p', 'text', message.text))
  return item
}

function pendingElement (cid) {
  return [...ui.messages.querySelectorAll('.pending')].find((item) => item.dataset.cid === cid)
}

function renderRooms () {
  ui.roomList.replaceChildren(...[...rooms].map(([name, room]) => {
    const direct = directs.has(name)
    const button = element('button', direct ? 'room direct' : 'room', roomLabel(name))
    button.type = 'button'
    button.dataset.room = name
    if (direct) button.title = `Direct conversation with ${roomLabel(name)}`
    if (name === current) button.setAttribute('aria-current', 'true')
    if (room.unread > 0) button.append(element('span', 'badge', String(room.unread)))
    button.addEventListener('click', () => show(name))
    const item = element('li')
    item.append(button)
    return item
  }))
}

function actionButton (className, text, title, onClick) {
  const node = element('button', className, text)
  node.type = 'button'
  node.title = title
  node.addEventListener('click', onClick)
  return node
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
      actionButton('remove', 'remove', `Remove ${user.name} from ${roomLabel(room)}`, () => moderate('remove', { room, userId: user.id })),
      actionButton('kick', 'kick', `Disconnect ${user.name} everywhere`, () => moderate('kick', { userId: user.id }))
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

function renderMessages () {
  const room = current === null ? null : rooms.get(current)
  ui.messages.replaceChildren(...(room === null ? [] : [...room.messages.map(messageItem), ...[...room.pending.values()].map(pendingItem)]))
  ui.messages.scrollTop = ui.messages.scrollHeight
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
  current = name
  if (name !== null) roomState(name).unread = 0
  ui.roomTitle.textContent = name === null ? 'No room' : roomLabel(name)
  renderRooms()
  renderMessages()
  renderUsers()
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
async function moderate (action, body) {
  const reason = ui.reasonInput.value.trim()
  const request = reason === '' ? body : { ...body, reason }
  try {
    const response = await fetch(`/staff/${action}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${staffToken}` },
      body: JSON.stringify(request)
    })
    const answer = await response.json().catch(() => ({}))
    if (!response.ok) notify(`Sorry, that did not work: ${answer.message ?? response.statusText}`)
  } catch (err) {
    notify(`Sorry, that did not work: ${err.message}`)
  }
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
  localStorage.setItem(NAME_KEY, name)
  ui.nameInput.value = name
  // The client has renamed our own entries; presence tells everyone else.
  renderUsers()
})

chat.on('joined', (frame) => {
  const fresh = !rooms.has(frame.room)
  const room = roomState(frame.room)
  // recovered: history is exactly what we missed. Otherwise a gap is possible
  // and history is the latest page, so it replaces what we had.
  room.messages = (frame.recovered ? room.messages.concat(frame.history) : frame.history).slice(-MAX_SHOWN)
  // A message whose echo a dropped socket lost comes back in the history instead.
  for (const message of frame.history) room.pending.delete(message.cid)
  // A direct room: one this page opened, or one the other user wrote in first.
  if (frame.with !== undefined) directs.set(frame.room, { id: frame.with.id, name: seenName(frame.with) })
  else memberOf.add(frame.room)
  const asked = switchTo === frame.room || (directTo !== null && frame.with?.id === directTo)
  if (current === null || asked || current === frame.room) {
    if (switchTo === frame.room) switchTo = null
    if (asked) directTo = null
    show(frame.room)
  } else {
    // A conversation the other user started: their first messages come in its history.
    if (fresh && frame.with !== undefined) room.unread = frame.history.filter((message) => message.from.id !== chat.id).length
    renderRooms()
    remember()
  }
})

chat.on('message', (message) => {
  const room = roomState(message.room)
  const mine = message.cid !== undefined && room.pending.delete(message.cid)
  room.messages.push(message)
  if (room.messages.length > MAX_SHOWN) room.messages.shift()
  if (message.room !== current) {
    if (message.from.id !== chat.id) room.unread++
    renderRooms()
    return
  }
  const list = ui.messages
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40
  if (mine) pendingElement(message.cid)?.remove()
  // Delivered messages stay above the ones still pending, in the server's order.
  list.insertBefore(messageItem(message), list.querySelector('.pending'))
  if (list.children.length > MAX_SHOWN) list.firstElementChild.remove()
  if (atBottom || message.from.id === chat.id) list.scrollTop = list.scrollHeight
})

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
  if (failed === undefined) {
    notify(`Sorry, that did not work: ${frame.message}`)
    return
  }
  // The text goes back into the box, unless something else is being typed there.
  const { text, room } = failed.pending.get(frame.cid)
  failed.pending.delete(frame.cid)
  pendingElement(frame.cid)?.remove()
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

ui.textInput.addEventListener('input', renderComposer)

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
  let cid
  try {
    cid = chat.send(text, current)
  } catch (err) {
    notify(`Sorry, the message was not sent: ${err.message}`)
    return
  }
  ui.textInput.value = ''
  const message = { cid, room: current, text }
  roomState(current).pending.set(cid, message)
  ui.messages.append(pendingItem(message))
  ui.messages.scrollTop = ui.messages.scrollHeight
  renderComposer()
})

if (staffToken !== null) {
  fetch('/staff/check', { headers: { authorization: `Bearer ${staffToken}` } })
    .then((response) => {
      staff = response.ok
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
