import t from 'tap'
import { Backoff } from '../../lib/client/backoff.js'
import { JoinRetries } from '../../lib/client/join-retries.js'
import { withFakeClock } from '../helpers/fake-clock.js'

t.test('each retry of a room waits its own growing backoff', async (t) => {
  t.intercept(Math, 'random', { value: () => 0.5 })
  await withFakeClock((clock) => {
    const retries = new JoinRetries(new Backoff({ initialMs: 100, maxMs: 1000 }))
    const ran: string[] = []
    retries.schedule('a', () => ran.push('a1'))
    clock.tick(49)
    t.same(ran, [])
    clock.tick(1)
    t.same(ran, ['a1'], 'half of initialMs')
    retries.schedule('a', () => ran.push('a2'))
    retries.schedule('b', () => ran.push('b1'))
    clock.tick(50)
    t.same(ran, ['a1', 'b1'], 'b starts at its own first delay; a waits its second')
    clock.tick(50)
    t.same(ran, ['a1', 'b1', 'a2'])
    t.equal(retries.size, 2)
  })
})

t.test('a new schedule replaces the pending retry; stop cancels and starts over', async (t) => {
  t.intercept(Math, 'random', { value: () => 0.5 })
  await withFakeClock((clock) => {
    const retries = new JoinRetries(new Backoff({ initialMs: 100, maxMs: 1000 }))
    const ran: string[] = []
    retries.schedule('a', () => ran.push('first'))
    retries.schedule('a', () => ran.push('second'))
    clock.tick(1000)
    t.same(ran, ['second'], 'the replaced one never runs')

    retries.schedule('a', () => ran.push('stopped'))
    retries.schedule('b', () => ran.push('b'))
    retries.stop('a')
    t.equal(retries.size, 1)
    clock.tick(1000)
    t.same(ran, ['second', 'b'])
    retries.stop()
    t.equal(retries.size, 0)
    retries.schedule('a', () => ran.push('again'))
    clock.tick(50)
    t.same(ran, ['second', 'b', 'again'], 'after stop, the first delay again')
    retries.stop()
  })
})
