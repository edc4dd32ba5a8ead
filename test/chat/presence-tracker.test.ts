import type { FastifyBaseLogger } from 'fastify'
import t from 'tap'
import type { PageRequest, Presence, PresencePage } from '../../lib/broker/presence.js'
import { PresenceTracker } from '../../lib/chat/presence-tracker.js'
import type { User } from '../../lib/protocol/wire.js'
import { within } from '../helpers/chat.js'
import { withFakeClock } from '../helpers/fake-clock.js'

const GRACE = 1000
const alice: User = { id: 'alice', name: 'Alice' }
const bob: User = { id: 'bob', name: 'Bob' }

/** A presence back end that records what it is asked to announce, failing when told to. */
class RecordingPresence implements Presence {
  readonly calls: string[] = []
  fail: Error | null = null
  listed: PresencePage = { users: [alice], count: 1 }
  // While set, a join waits for it to settle and takes its outcome.
  gate: Promise<void> | null = null

  async join (room: string, user: User): Promise<void> {
    this.#record(`join ${room} ${user.id}`)
    if (this.gate !== null) await this.gate
  }

  async leave (room: string, user: User): Promise<void> {
    this.#record(`leave ${room} ${user.id}`)
  }

  async rename (room: string, user: User, previous: string): Promise<void> {
    this.#record(`rename ${room} ${user.id} ${previous}->${user.name}`)
  }

  async page (room: string, request: PageRequest, toMembers?: boolean): Promise<PresencePage> {
    this.#record(`page ${room} ${request.limit} ${request.after ?? '-'}${toMembers === true ? ' to members' : ''}`)
    return this.listed
  }

  async count (room: string): Promise<number> {
    this.#record(`count ${room}`)
    return this.listed.count
  }

  #record (call: string): void {
    this.calls.push(call)
    if (this.fail !== null) throw this.fail
  }
}

interface Warning { obj: unknown, msg: string }

function setup (graceMs = GRACE): { tracker: PresenceTracker, backend: RecordingPresence, warnings: Warning[], warned: () => Promise<Warning> } {
  const backend = new RecordingPresence()
  const warnings: Warning[] = []
  let wake: (() => void) | null = null
  const log = { warn: (obj: unknown, msg: string) => { warnings.push({ obj, msg }); wake?.() } } as unknown as FastifyBaseLogger
  const warned = async (): Promise<Warning> => {
    const n = warnings.length
    while (warnings.length === n) await new Promise<void>((resolve) => { wake = resolve })
    return warnings[n]
  }
  return { tracker: new PresenceTracker(backend, graceMs, log), backend, warnings, warned }
}

t.test('arrived announces the join', async (t) => {
  const { tracker, backend } = setup()
  const announced = tracker.arrived('r', alice)
  t.not(announced, null)
  await announced
  t.strictSame(backend.calls, ['join r alice'])
})

t.test('departed announces the leave once the grace period is over', async (t) => {
  await withFakeClock((clock) => {
    const { tracker, backend } = setup()
    tracker.departed('r', alice)
    clock.tick(GRACE - 1)
    t.strictSame(backend.calls, [], 'not within the grace period')
    clock.tick(1)
    t.strictSame(backend.calls, ['leave r alice'])
    clock.tick(GRACE * 2)
    t.strictSame(backend.calls, ['leave r alice'], 'once')
  })
})

t.test('coming back within the grace period announces neither the leave nor the join', async (t) => {
  await withFakeClock((clock) => {
    const { tracker, backend } = setup()
    tracker.departed('r', alice)
    clock.tick(GRACE - 1)
    t.equal(tracker.arrived('r', alice), null, 'nothing to announce')
    clock.tick(GRACE * 2)
    t.strictSame(backend.calls, [], 'the leave was called off')

    // And the next departure and return are treated afresh.
    tracker.departed('r', alice)
    clock.tick(GRACE)
    t.strictSame(backend.calls, ['leave r alice'])
    t.not(tracker.arrived('r', alice), null, 'back after the grace period: announced')
    t.strictSame(backend.calls, ['leave r alice', 'join r alice'])
  })
})

t.test('the grace period is per room and per user', async (t) => {
  await withFakeClock((clock) => {
    const { tracker, backend } = setup()
    tracker.departed('r', alice)
    tracker.departed('r', bob)
    tracker.departed('s', alice)
    t.not(tracker.arrived('other', alice), null, 'arriving elsewhere is announced')
    t.equal(tracker.arrived('r', bob), null, 'bob is back in r')
    clock.tick(GRACE)
    t.strictSame(backend.calls.sort(), ['join other alice', 'leave r alice', 'leave s alice'])
  })
})

t.test('without a grace period the leave is announced at once', async (t) => {
  const { tracker, backend } = setup(0)
  tracker.departed('r', alice)
  t.strictSame(backend.calls, ['leave r alice'])
  t.not(tracker.arrived('r', alice), null, 'and a return is a join')
})

t.test('close announces every pending leave now, and any later one at once', async (t) => {
  await withFakeClock((clock) => {
    const { tracker, backend } = setup()
    tracker.departed('r', alice)
    tracker.departed('s', bob)
    clock.tick(GRACE / 2)
    tracker.close()
    t.strictSame(backend.calls.sort(), ['leave r alice', 'leave s bob'])
    tracker.departed('t', alice)
    t.strictSame(backend.calls.at(-1), 'leave t alice', 'after close, departures do not wait')
    clock.tick(GRACE * 2)
    t.equal(backend.calls.length, 3, 'the called-off timers do not announce again')
    t.not(tracker.arrived('r', alice), null, 'a pending leave announced by close is not called off by a return')
  })
})

t.test('renamed announces the new name in each room; page and count read the back end', async (t) => {
  const { tracker, backend } = setup()
  tracker.renamed(['r', 's'], { id: 'alice', name: 'Ally' }, 'Alice')
  tracker.renamed([], alice, 'x')
  t.strictSame(backend.calls, ['rename r alice Alice->Ally', 'rename s alice Alice->Ally'])
  t.equal(await tracker.page('r', { limit: 10 }), backend.listed)
  t.equal(await tracker.peekPage('s', { limit: 5, after: '7' }), backend.listed)
  t.equal(await tracker.count('s'), 1)
  t.strictSame(backend.calls.slice(-3), ['page r 10 - to members', 'page s 5 7', 'count s'], 'a page for a member is for members; a look is not')
})

t.test('failures of leave and rename are logged, not thrown', async (t) => {
  const { tracker, backend, warnings, warned } = setup(0)
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  backend.fail = new Error('presence down')

  const leaveWarning = within(warned(), 3000, 'the leave warning')
  t.doesNotThrow(() => tracker.departed('r', alice))
  t.strictSame(await leaveWarning, { obj: { err: backend.fail }, msg: 'fastify-chat: presence leave failed' })
  const renameWarning = within(warned(), 3000, 'the rename warning')
  t.doesNotThrow(() => tracker.renamed(['r'], alice, 'Al'))
  t.strictSame(await renameWarning, { obj: { err: backend.fail }, msg: 'fastify-chat: presence rename failed' })

  await new Promise((resolve) => setImmediate(resolve))
  t.equal(warnings.length, 2)
  t.strictSame(unhandled, [])
})

t.test('a failed join is handed to the caller, and is not an unhandled rejection if it looks away', async (t) => {
  const { tracker, backend, warnings } = setup()
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  backend.fail = new Error('presence down')

  tracker.arrived('ignored', alice)
  await t.rejects(tracker.arrived('r', alice) as Promise<void>, { message: 'presence down' })
  await new Promise((resolve) => setImmediate(resolve))
  t.strictSame(unhandled, [])
  t.strictSame(warnings, [], 'the caller decides what a failed join means')
})

/** A promise settled by hand, for a join that is still on its way. */
function deferred (): { promise: Promise<void>, resolve: () => void, reject: (err: Error) => void } {
  let settle!: { resolve: () => void, reject: (err: Error) => void }
  const promise = new Promise<void>((resolve, reject) => { settle = { resolve, reject } })
  promise.catch(() => {})
  return { promise, resolve: () => settle.resolve(), reject: (err) => settle.reject(err) }
}

t.test('a join that failed is announced again by a return within the grace period', async (t) => {
  const { tracker, backend } = setup()
  backend.fail = new Error('presence down')
  await t.rejects(tracker.arrived('r', alice) as Promise<void>, { message: 'presence down' })
  // The hub takes the socket out of the room after a failed join.
  tracker.departed('r', alice)
  t.strictSame(backend.calls, ['join r alice', 'leave r alice'], 'the leave goes out at once: it only cleans up a join whose answer was lost')
  backend.fail = null
  const retried = tracker.arrived('r', alice)
  t.not(retried, null, 'the retry is announced, not taken for a return')
  await retried
  t.strictSame(backend.calls, ['join r alice', 'leave r alice', 'join r alice'])
})

t.test('a join that fails during the grace period is announced again by the return', async (t) => {
  const { tracker, backend } = setup()
  const gate = deferred()
  backend.gate = gate.promise
  const first = tracker.arrived('r', alice) as Promise<void>
  tracker.departed('r', alice)
  gate.reject(new Error('presence down'))
  await t.rejects(first, { message: 'presence down' })
  backend.gate = null
  const retried = tracker.arrived('r', alice)
  t.not(retried, null)
  await retried
  t.strictSame(backend.calls, ['join r alice', 'join r alice'], 'joined afresh; the pending leave was called off')
})

t.test('a return while the join is on its way waits for that join, without a second one', async (t) => {
  await withFakeClock(async (clock) => {
    const { tracker, backend } = setup()
    const gate = deferred()
    backend.gate = gate.promise
    const first = tracker.arrived('r', alice)
    tracker.departed('r', alice)
    const again = tracker.arrived('r', alice)
    t.equal(again, first, 'the same announcement')
    gate.resolve()
    await again
    clock.tick(GRACE * 2)
    t.strictSame(backend.calls, ['join r alice'], 'one join, and the leave called off')

    // Once the join went through, the next return within the grace period announces nothing.
    tracker.departed('r', alice)
    t.equal(tracker.arrived('r', alice), null)
    clock.tick(GRACE * 2)
    t.strictSame(backend.calls, ['join r alice'])
  })
})

t.test('a join that failed while another socket of the user stays is cleaned up at the departure', async (t) => {
  await withFakeClock(async (clock) => {
    const { tracker, backend } = setup()
    backend.fail = new Error('presence down')
    await (tracker.arrived('r', alice) as Promise<void>).catch(() => {})
    backend.fail = null
    clock.tick(GRACE * 2)
    tracker.departed('r', alice)
    t.strictSame(backend.calls, ['join r alice', 'leave r alice'], 'no grace period for a user never announced')
  })
})
