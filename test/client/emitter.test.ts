import t from 'tap'
import { Emitter } from '../../lib/client/emitter.js'

interface Events { ping: number, pong: string }

t.test('calls each listener of an event with its payload, until removed', async (t) => {
  const events = new Emitter<Events>()
  const got: Array<string | number> = []
  const off = events.on('ping', (n) => got.push(n))
  events.on('pong', (s) => got.push(s))
  events.emit('ping', 1)
  events.emit('pong', 'a')
  off()
  events.emit('ping', 2)
  const listener = (s: string): void => { got.push(`again ${s}`) }
  events.on('pong', listener)
  events.off('pong', listener)
  events.off('ping', listener as unknown as (n: number) => void)
  events.emit('pong', 'b')
  t.same(got, [1, 'a', 'b'])
})

t.test('a listener may remove itself or another while called; all called this time still run', async (t) => {
  const events = new Emitter<Events>()
  const got: string[] = []
  const offB = events.on('ping', () => { got.push('a'); offB() })
  events.on('ping', () => got.push('b'))
  events.emit('ping', 1)
  events.emit('ping', 2)
  t.same(got, ['a', 'b', 'b'])
})

t.test('a throwing listener is reported on its own and does not stop the others', async (t) => {
  const events = new Emitter<Events>()
  const got: number[] = []
  events.on('ping', () => { throw new Error('listener broke') })
  events.on('ping', (n) => got.push(n))
  // Caught here rather than thrown, so the test process survives the report.
  const reported: Array<() => void> = []
  t.intercept(globalThis, 'queueMicrotask', { value: (task: () => void) => { reported.push(task) } })
  events.emit('ping', 7)
  t.same(got, [7])
  t.equal(reported.length, 1)
  t.throws(() => reported[0]?.(), { message: 'listener broke' })
})
