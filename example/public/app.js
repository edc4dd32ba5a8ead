/* global document, localStorage, setTimeout, clearTimeout, window */
// The example page. Every piece of user text goes through textContent: names,
// room names and messages come from other people.
import { connect } from '/chat/client.js'

const NAME_KEY = 'fastify-chat.name'
// Enough scrollback for a demo without letting a busy room grow the page forever.
const MAX_SHOWN = 500

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
  users: $('users')
}

/** room name -> { messages, users: Map<id, user>, unread } */
const rooms = new Map()
let current = null
// A room the user asked to join: we switch to it once the server confirms.
let switchTo = null

// ?name= and ?room= in the page's address pick the name and first room, so a link can share them.
const params = new URLSearchParams(window.location.search)
const startRoom = params.get('room')
const chat = connect(startRoom === null ? '/chat' : `/chat?room=${encodeURIComponent(startRoom)}`, {
  name: params.get('name') ?? localStorage.getItem(NAME_KEY) ?? undefined
})

function element (tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

function roomState (name) {
  let room = rooms.get(name)
  if (room === undefined) {
    room = { messages: [], users: new Map(), unread: 0 }
    rooms.set(name, room)
  }
  return room
}

function messageItem (message) {
  const item = element('li', message.from.id === chat.id ? 'message mine' : 'message')
  const time = element('time', 'time', new Date(message.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }))
  time.dateTime = new Date(message.ts).toISOString()
  item.append(element('span', 'from', message.from.name), time, element('p', 'text', message.text))
  return item
}

function renderRooms () {
  ui.roomList.replaceChildren(...[...rooms].map(([name, room]) => {
    const button = element('button', 'room', name)
    button.type = 'button'
    if (name === current) button.setAttribute('aria-current', 'true')
    if (room.unread > 0) button.append(element('span', 'badge', String(room.unread)))
    button.addEventListener('click', () => show(name))
    const item = element('li')
    item.append(button)
    return item
  }))
}

function renderUsers () {
  const users = current === null ? [] : [...rooms.get(current).users.values()]
  users.sort((a, b) => a.name.localeCompare(b.name))
  ui.users.replaceChildren(...users.map((user) => element('li', user.id === chat.id ? 'me' : '', user.name)))
}

function renderMessages () {
  const messages = current === null ? [] : rooms.get(current).messages
  ui.messages.replaceChildren(...messages.map(messageItem))
  ui.messages.scrollTop = ui.messages.scrollHeight
}

function renderComposer () {
  // Open while reconnecting too: what is typed then waits in the client's queue.
  const disabled = chat.status === 'closed' || current === null
  ui.textInput.disabled = disabled
  ui.sendButton.disabled = disabled
  ui.leave.disabled = current === null
}

function show (name) {
  current = name
  if (name !== null) roomState(name).unread = 0
  ui.roomTitle.textContent = name ?? 'No room'
  renderRooms()
  renderMessages()
  renderUsers()
  renderComposer()
}

let noticeTimer
function notify (text) {
  ui.notice.textContent = text
  ui.notice.hidden = false
  clearTimeout(noticeTimer)
  noticeTimer = setTimeout(() => { ui.notice.hidden = true }, 6000)
}

chat.on('status', (status) => {
  ui.status.textContent = status
  ui.status.dataset.status = status
  renderComposer()
})

chat.on('welcome', ({ name }) => {
  if (document.activeElement !== ui.nameInput) ui.nameInput.value = name
})

chat.on('renamed', ({ name }) => {
  localStorage.setItem(NAME_KEY, name)
  ui.nameInput.value = name
  // Presence tells everyone else; our own entries we update here.
  for (const room of rooms.values()) {
    if (room.users.has(chat.id)) room.users.set(chat.id, { id: chat.id, name })
  }
  renderUsers()
})

chat.on('joined', (frame) => {
  const room = roomState(frame.room)
  // recovered: history is exactly what we missed. Otherwise a gap is possible
  // and history is the latest page, so it replaces what we had.
  room.messages = (frame.recovered ? room.messages.concat(frame.history) : frame.history).slice(-MAX_SHOWN)
  room.users = new Map(frame.users.map((user) => [user.id, user]))
  if (current === null || switchTo === frame.room || current === frame.room) {
    switchTo = null
    show(frame.room)
  } else {
    renderRooms()
  }
})

chat.on('message', (message) => {
  const room = roomState(message.room)
  room.messages.push(message)
  if (room.messages.length > MAX_SHOWN) room.messages.shift()
  if (message.room !== current) {
    room.unread++
    renderRooms()
    return
  }
  const list = ui.messages
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40
  list.append(messageItem(message))
  if (list.children.length > MAX_SHOWN) list.firstElementChild.remove()
  if (atBottom || message.from.id === chat.id) list.scrollTop = list.scrollHeight
})

chat.on('presence', ({ room, event, user }) => {
  const state = rooms.get(room)
  if (state === undefined) return
  if (event === 'leave') state.users.delete(user.id)
  else state.users.set(user.id, user)
  if (room === current) renderUsers()
})

chat.on('left', ({ room }) => {
  rooms.delete(room)
  if (room === current) show(rooms.keys().next().value ?? null)
  else renderRooms()
})

chat.on('error', (frame) => {
  notify(`Sorry, that did not work: ${frame.message}`)
})

ui.nameForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const name = ui.nameInput.value.trim()
  if (name !== '') chat.rename(name)
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

ui.sendForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const text = ui.textInput.value
  if (text.trim() === '' || current === null) return
  try {
    chat.send(text, current)
    ui.textInput.value = ''
  } catch (err) {
    notify(`Sorry, the message was not sent: ${err.message}`)
  }
})

show(null)
