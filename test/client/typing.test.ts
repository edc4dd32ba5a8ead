import t from 'tap'
import { Emitter } from '../../lib/client/emitter.js'
import { MAX_TYPING_USERS, TYPING_EXPIRY_MS, TYPING_THROTTLE_MS, Typing } from '../../lib/client/typing.js'
import type { ChatEvents, TypingEvent } from '../../lib/client/types.js'
import type { MessageFrame, ServerFrame, SignalFrame, SignalRequest } from '../../lib/protocol/wire.js'
import WebSocket from 'ws'
import { listen, within } from '../helpers/chat.js'
import { withFakeClock } from '../helpers/fake-clock.js'

const signal = (room: string, id: string, name = 'typing', from = id): SignalFrame =>
  ({ type: 'signal', room, name, from: { id, name: from } })
const message = (room: string, id: string): MessageFrame =>
  ({ type: 'message', room, offset: 1, ts: 0, from: { id, name: id }, text: 'hi' })

/** A typing tracker, the frames it sent and the events it emitted; `open` decides whether a send goes out. */
function setup (open = { now: true }): { typing: Typing, sent: SignalRequest[], events: TypingEvent[], emitter: Emitter<ChatEvents> } {
  const emitter = new Emitter<ChatEvents>()
  const sent: SignalRequest[] = []
  const events: TypingEvent[] = []
  emitter.on('typing', (e) => events.push(e))
  const typing = new Typing(emitter, (frame) => {
    if (!open.now) return false
    sent.push(frame)
    return true
  })
  return { typing, sent, events, emitter }
}

const names = (events: TypingEvent[]): Array<[string, string[]]> => events.map((e) => [e.room, e.users.map((u) => u.id)])

t.test('typing() sends at most one signal per room per throttle interval, and none while not open', async (t) => {
  await withFakeClock((clock) => {
    const open = { now: false }
    const { typing, sent } = setup(open)
    t.equal(typing.typing('lobby'), false, 'not open: not sent, not queued')
    open.now = true
    t.equal(typing.typing('lobby'), true)
    t.strictSame(sent, [{ type: 'signal', room: 'lobby', name: 'typing' }])
    clock.tick(TYPING_THROTTLE_MS - 1)
    t.equal(typing.typing('lobby'), false, 'within the interval')
    t.equal(typing.typing('other'), true, 'another room has its own')
    clock.tick(1)
    t.equal(typing.typing('lobby'), true, 'after the interval')
    t.equal(sent.length, 3)
    t.throws(() => typing.typing('bad room'), TypeError)
    typing.close()
  })
})

t.test('a user is listed from their signal until it expires, renewed by each signal', async (t) => {
  await withFakeClock((clock) => {
    const { typing, events } = setup()
    typing.onSignal(signal('lobby', 'bob'), 'me')
    t.strictSame(names(events), [['lobby', ['bob']]])
    typing.onSignal(signal('lobby', 'carol'), 'me')
    t.strictSame(names(events).at(-1), ['lobby', ['bob', 'carol']])
    clock.tick(TYPING_EXPIRY_MS - 1000)
    typing.onSignal(signal('lobby', 'bob'), 'me')
    t.equal(events.length, 2, 'a renewal of a listed user changes no list')
    clock.tick(999)
    t.strictSame(typing.users('lobby').map((u) => u.id), ['bob', 'carol'], 'not yet')
    clock.tick(1)
    t.strictSame(names(events).at(-1), ['lobby', ['bob']], 'carol expired 5 s after her only signal')
    clock.tick(TYPING_EXPIRY_MS - 1001)
    t.strictSame(typing.users('lobby').map((u) => u.id), ['bob'], 'bob was renewed')
    clock.tick(1)
    t.strictSame(names(events).at(-1), ['lobby', []], 'bob expired 5 s after his last signal')
    t.strictSame(typing.users('lobby'), [])
    const before = events.length
    clock.tick(60_000)
    t.equal(events.length, before, 'no timer left behind: nothing more happens')
  })
})

t.test('a message ends its sender\'s typing; one of this user\'s own lifts the throttle', async (t) => {
  await withFakeClock(() => {
    const { typing, events, sent } = setup()
    typing.onSignal(signal('lobby', 'bob'), 'me')
    typing.onSignal(signal('lobby', 'carol'), 'me')
    typing.onMessage(message('lobby', 'bob'), 'me')
    t.strictSame(names(events).at(-1), ['lobby', ['carol']])
    const count = events.length
    typing.onMessage(message('lobby', 'dave'), 'me')
    typing.onMessage(message('elsewhere', 'bob'), 'me')
    t.equal(events.length, count, 'a message of someone not typing changes nothing')
    typing.onMessage(message('lobby', 'carol'), 'me')
    t.strictSame(names(events).at(-1), ['lobby', []])

    typing.typing('lobby')
    t.equal(typing.typing('lobby'), false, 'throttled')
    typing.onMessage(message('lobby', 'me'), 'me')
    t.equal(typing.typing('lobby'), true, 'after my own message, the next keystroke signals at once')
    t.equal(sent.length, 2)
    typing.close()
  })
})

t.test('own signals (other tabs) and other signal names are not listed; renames are', async (t) => {
  await withFakeClock(() => {
    const { typing, events } = setup()
    typing.onSignal(signal('lobby', 'me'), 'me')
    typing.onSignal(signal('lobby', 'bob', 'recording'), 'me')
    t.strictSame(events, [])
    typing.onSignal(signal('lobby', 'bob', 'typing', 'Bob'), 'me')
    typing.onSignal(signal('lobby', 'bob', 'typing', 'Robert'), 'me')
    t.strictSame(events.map((e) => e.users.map((u) => u.name)), [['Bob'], ['Robert']])
    typing.close()
  })
})

t.test('forget, dropped and close clear what is known; close leaves no timer and emits nothing', async (t) => {
  await withFakeClock((clock) => {
    const { typing, events, sent } = setup()
    typing.onSignal(signal('a', 'bob'), 'me')
    typing.onSignal(signal('b', 'bob'), 'me')
    typing.onSignal(signal('c', 'bob'), 'me')
    typing.typing('a')
    typing.forget('a')
    t.strictSame(names(events).at(-1), ['a', []])
    t.equal(typing.typing('a'), true, 'a room left and joined again signals at once')
    typing.forget('nowhere')
    const count = events.length
    typing.dropped()
    t.strictSame(names(events.slice(count)), [['b', []], ['c', []]], 'a drop empties every list')
    t.equal(typing.typing('b'), true, 'and resets the throttle')

    typing.onSignal(signal('a', 'carol'), 'me')
    const before = events.length
    typing.close()
    clock.tick(60_000)
    t.equal(events.length, before, 'close emits nothing, and no timer fires')
    typing.onSignal(signal('a', 'dave'), 'me')
    t.equal(events.length, before, 'a signal after close is ignored')
    t.equal(sent.length, 3)
  })
})

t.test('a listener that closes the connection during an expiry leaves no timer', async (t) => {
  await withFakeClock((clock) => {
    const { typing, events, emitter } = setup()
    typing.onSignal(signal('a', 'bob'), 'me')
    clock.tick(1000)
    typing.onSignal(signal('b', 'carol'), 'me')
    let fired = 0
    const count = events.length
    // The first expiry (bob's) closes; carol's would otherwise need another timer.
    emitter.on('typing', () => { fired++; typing.close() })
    clock.tick(TYPING_EXPIRY_MS)
    t.equal(fired, 1)
    t.equal(events.length, count + 1)
    clock.tick(60_000)
    t.equal(events.length, count + 1, 'nothing after the close')
  })
})

t.test('at most MAX_TYPING_USERS are listed per room', async (t) => {
  await withFakeClock(() => {
    const { typing } = setup()
    for (let i = 0; i < MAX_TYPING_USERS + 10; i++) typing.onSignal(signal('lobby', `u${i}`), 'me')
    t.equal(typing.users('lobby').length, MAX_TYPING_USERS)
    typing.onSignal(signal('lobby', 'u0'), 'me')
    t.equal(typing.users('lobby').length, MAX_TYPING_USERS, 'one listed already is renewed')
    typing.close()
  })
})

t.test('over real sockets: typing() reaches another client\'s list, and its message clears it', async (t) => {
  const { url } = await listen(t, {
    identify: (request) => {
      const { user } = request.query as { user: string }
      return { id: user, name: user }
    }
  })
  /** A socket of `id`, its tracker fed with its frames as the connection would. */
  const open = async (id: string): Promise<{ ws: WebSocket, typing: Typing, events: TypingEvent[] }> => {
    const emitter = new Emitter<ChatEvents>()
    const events: TypingEvent[] = []
    emitter.on('typing', (e) => events.push(e))
    const ws = new WebSocket(`${url}/chat?user=${id}`)
    const typing = new Typing(emitter, (frame) => {
      ws.send(JSON.stringify(frame))
      return true
    })
    t.teardown(() => { typing.close(); ws.close() })
    const joined = new Promise<void>((resolve) => ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as ServerFrame
      if (frame.type === 'joined') resolve()
      if (frame.type === 'signal') typing.onSignal(frame, id)
      if (frame.type === 'message') typing.onMessage(frame, id)
    }))
    await within(joined)
    return { ws, typing, events }
  }
  const alice = await open('alice')
  const bob = await open('bob')
  const listed = new Promise<void>((resolve) => bob.ws.on('message', () => { if (bob.events.length > 0) resolve() }))
  t.equal(alice.typing.typing('lobby'), true)
  t.equal(alice.typing.typing('lobby'), false, 'throttled')
  await within(listed)
  t.strictSame(names(bob.events), [['lobby', ['alice']]])
  t.strictSame(alice.events, [], 'alice does not list herself')
  const cleared = new Promise<void>((resolve) => bob.ws.on('message', () => { if (bob.events.length > 1) resolve() }))
  alice.ws.send(JSON.stringify({ type: 'message', room: 'lobby', text: 'done' }))
  await within(cleared)
  t.strictSame(names(bob.events).at(-1), ['lobby', []])
})
