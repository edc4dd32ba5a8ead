/* global document */
// The page's pieces of DOM that show messages. Every piece of user text
// (names, texts, quotes) goes through textContent: it comes from other people.

export function element (tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

export function actionButton (className, text, title, onClick) {
  const node = element('button', className, text)
  node.type = 'button'
  node.title = title
  node.addEventListener('click', onClick)
  return node
}

const clock = { hour: '2-digit', minute: '2-digit' }

/** The time for today's messages; older ones get the date too, and the year when it is not this one. */
export function when (ts) {
  const date = new Date(ts)
  const now = new Date()
  if (date.toDateString() === now.toDateString()) return date.toLocaleTimeString([], clock)
  const day = date.getFullYear() === now.getFullYear() ? { month: 'short', day: 'numeric' } : { year: 'numeric', month: 'short', day: 'numeric' }
  return date.toLocaleString([], { ...day, ...clock })
}

// A quote shows the start of a long message.
const QUOTE_LENGTH = 120

/** The offset a message's `meta.replyTo` names, when it is one. */
export function replyTo (meta) {
  const offset = meta?.replyTo
  return Number.isSafeInteger(offset) && offset > 0 ? offset : undefined
}

/** The quoted message (`undefined` when the page does not hold it), as a reply shows it. */
function quote (quoted) {
  const node = element('blockquote', 'quote')
  if (quoted === undefined) {
    node.append(element('span', 'quote-text missing', 'a message not loaded'))
  } else if (quoted.deleted) {
    node.append(element('span', 'quote-from', quoted.from.name), element('span', 'quote-text gone', 'message deleted'))
  } else {
    const text = [...quoted.text]
    const shown = text.length > QUOTE_LENGTH ? `${text.slice(0, QUOTE_LENGTH).join('')}…` : quoted.text
    node.append(element('span', 'quote-from', quoted.from.name), element('span', 'quote-text', shown))
  }
  return node
}

/**
 * A delivered message. `page` tells who the user is (`me`), finds a quoted
 * message (`held(offset)`), and takes the clicks on reply, edit and delete;
 * edit and delete are offered on one's own messages only.
 */
export function messageItem (message, page) {
  const mine = message.from.id === page.me
  const item = element('li', `message${mine ? ' mine' : ''}${message.deleted ? ' deleted' : ''}`)
  item.dataset.offset = String(message.offset)
  const time = element('time', 'time', when(message.ts))
  time.dateTime = new Date(message.ts).toISOString()
  time.title = new Date(message.ts).toLocaleString()
  item.append(element('span', 'from', message.from.name), time)
  if (message.edited && !message.deleted) item.append(element('span', 'edited', '(edited)'))
  const quoted = replyTo(message.meta)
  if (quoted !== undefined) item.append(quote(page.held(quoted)))
  item.append(message.deleted ? element('p', 'text gone', 'message deleted') : element('p', 'text', message.text))
  if (!message.deleted) {
    const actions = element('span', 'actions')
    actions.append(actionButton('reply', 'Reply', `Reply to ${message.from.name}`, () => page.reply(message)))
    if (mine) {
      actions.append(
        actionButton('edit', 'Edit', 'Change this message', () => page.edit(message)),
        actionButton('delete', 'Delete', 'Delete this message', () => page.delete(message))
      )
    }
    item.append(actions)
  }
  return item
}

/** A message sent but not yet back from the server: in the client's queue, or on its way. */
export function pendingItem (message, page) {
  const item = element('li', 'message mine pending')
  item.dataset.cid = message.cid
  item.append(element('span', 'from', page.name), element('span', 'sending', 'sending…'))
  const quoted = replyTo(message.meta)
  if (quoted !== undefined) item.append(quote(page.held(quoted)))
  item.append(element('p', 'text', message.text))
  return item
}

/** "alice is typing…", for the users typing in a room (this user not among them); '' when nobody is. */
export function typingText (users) {
  if (users.length === 0) return ''
  if (users.length === 1) return `${users[0].name} is typing…`
  if (users.length === 2) return `${users[0].name} and ${users[1].name} are typing…`
  return 'several people are typing…'
}
