// Two chat instances on one real redis-server, raw subscribers and typed
// clients on both, and a publisher on each that counts what was acknowledged:
// the setup of the fault tests. A test injects its fault while the publishers
// run, then checks every subscriber's log with `checkLog`.
import WebSocket from 'ws'
import type { Test } from 'tap'
import { redisAdapter } from '../../index.js'
import type { RedisAdapterOptions } from '../../index.js'
import { connect } from '../../lib/client.js'
import type { ChatConnection } from '../../lib/client.js'
import type { ServerFrame } from '../../lib/protocol/wire.js'
import { listen, within } from './chat.js'
import { checkLog, summary } from './frame-log.js'
import type { Ack, LogEntry, LogReport } from './frame-log.js'
import { startRedis } from './redis.js'
import type { RedisServer, RedisServerOptions } from './redis.js'
import { startProxy } from './tcp-proxy.js'
import type { TcpProxy } from './tcp-proxy.js'

export const ROOM = 'faults'

/** How big a rig is. Small by default: two cores run it, and other tests at once. */
export interface RigOptions {
  redis?: RedisServerOptions
  /** Raw subscribers per instance. @default 10 */
  subscribers?: number
  /** Messages per second per publisher. @default 75 */
  rate?: number
  /** Instance B reaches Redis through a {@link TcpProxy}, to be cut off alone. */
  proxyB?: boolean
  historySize?: number
  adapter?: Partial<RedisAdapterOptions>
}

/** A log of what one subscriber received in the room, with a way to wait for a cid. */
class Recorder {
  readonly name: string
  readonly log: LogEntry[] = []
  /** Error frames received, by code. */
  readonly errors: string[] = []
  #cids = new Set<string>()
  #waiting = new Map<string, () => void>()

  constructor (name: string) {
    this.name = name
  }

  record (entry: LogEntry): void {
    this.log.push(entry)
    const cids = entry.kind === 'message' ? [entry.message.cid] : entry.frame.history.map((m) => m.cid)
    for (const cid of cids) {
      if (cid === undefined) continue
      this.#cids.add(cid)
      this.#waiting.get(cid)?.()
    }
  }

  /** Resolves once `cid` has arrived (live or in a `joined` history); false after `ms`. */
  async received (cid: string, ms: number): Promise<boolean> {
    if (this.#cids.has(cid)) return true
    try {
      await within(new Promise<void>((resolve) => this.#waiting.set(cid, resolve)), ms, `${this.name} to receive ${cid}`)
      return true
    } catch {
      return false
    } finally {
      this.#waiting.delete(cid)
    }
  }
}

// A join answered `unavailable` is sent again after this, at most so often.
const JOIN_RETRY_MS = 200
const JOIN_ATTEMPTS = 100

/**
 * A raw `ws` subscriber: logs every `joined` and message frame of the room as
 * it arrives. Joins again while the join is answered `unavailable`.
 */
class RawSubscriber extends Recorder {
  readonly ws: WebSocket
  closed: number | null = null
  readonly joined: Promise<void>
  /** Joins answered `unavailable`. */
  refusedJoins = 0
  #retry: NodeJS.Timeout | undefined

  constructor (name: string, url: string) {
    super(name)
    this.ws = new WebSocket(`${url}/chat?name=${name}`)
    this.ws.on('error', () => {})
    this.ws.on('close', (code) => {
      this.closed = code
      clearTimeout(this.#retry)
    })
    let joined = false
    this.joined = new Promise((resolve) => {
      this.ws.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as ServerFrame
        if (frame.type === 'joined') {
          joined = true
          this.record({ kind: 'joined', frame })
          resolve()
        } else if (frame.type === 'message') {
          this.record({ kind: 'message', message: frame })
        } else if (frame.type === 'error') {
          this.errors.push(frame.code)
          if (frame.code === 'unavailable' && frame.cid === undefined && !joined && ++this.refusedJoins < JOIN_ATTEMPTS) {
            this.#retry = setTimeout(() => this.ws.send(JSON.stringify({ type: 'join', room: ROOM })), JOIN_RETRY_MS)
          }
        }
      })
    })
  }

  close (): void {
    clearTimeout(this.#retry)
    this.ws.terminate()
  }
}

/** The package's own client: logs what it shows the app (its `joined` and `message` events). */
class TypedSubscriber extends Recorder {
  readonly client: ChatConnection
  readonly joined: Promise<void>
  /** Times the client lost its socket. */
  reconnects = 0

  constructor (name: string, url: string) {
    super(name)
    this.client = connect(`${url}/chat`, { name, WebSocket, backoff: { initialMs: 50, maxMs: 500 } })
    this.client.on('status', (status) => { if (status === 'reconnecting') this.reconnects++ })
    this.client.on('message', (message) => this.record({ kind: 'message', message }))
    this.client.on('error', (frame) => this.errors.push(frame.code))
    this.joined = new Promise((resolve) => {
      this.client.on('joined', (frame) => {
        this.record({ kind: 'joined', frame })
        resolve()
      })
    })
  }
}

interface Pending { text: string, due: number, attempts: number }

const started = Date.now()
/** Milliseconds since the rig's module loaded, for traces. */
function clock (): number {
  return Date.now() - started
}

// An attempt without any answer is sent again after this (above the command timeout).
const SILENT_RETRY_MS = 4000
// After `unavailable` or `overloaded`.
const RETRY_MS = 200
const MAX_IN_FLIGHT = 200

/**
 * Sends numbered messages with cids at a steady rate over a raw socket, and
 * sends again, with the same cid, what was answered `unavailable` (or not at
 * all). A message counts once its echo, or the stored copy a retry gets, is back.
 */
class Publisher {
  readonly name: string
  readonly ws: WebSocket
  readonly acks = new Map<string, Ack>()
  readonly joined: Promise<void>
  /** `unavailable` (and `overloaded`) answers. */
  unavailable = 0
  /** Other error answers, which no test expects. */
  readonly errors: string[] = []
  #epoch = ''
  #sent = 0
  // What happened to each cid, in order: s(end) u(navailable) e(cho) h(istory) +ms, for a reader of a failure.
  readonly #trace = new Map<string, string[]>()
  #pending = new Map<string, Pending>()
  #timer: NodeJS.Timeout | undefined
  #ackWaiters: Array<{ count: number, resolve: () => void }> = []

  constructor (name: string, url: string) {
    this.name = name
    this.ws = new WebSocket(`${url}/chat?name=${name}`)
    this.ws.on('error', () => {})
    this.joined = new Promise((resolve) => {
      this.ws.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as ServerFrame
        if (frame.type === 'joined') {
          this.#epoch = frame.epoch
          // As the package's client does: a message in the history has arrived.
          for (const m of frame.history) this.#acked(m.cid, m.offset, 'h')
          resolve()
        } else if (frame.type === 'message') {
          this.#acked(frame.cid, frame.offset, 'e')
        } else if (frame.type === 'error' && frame.cid !== undefined) {
          this.#refused(frame.cid, frame.code)
        }
      })
    })
  }

  /** Messages sent at least once. */
  get sent (): number {
    return this.#sent
  }

  /** Messages not acknowledged yet. */
  get pending (): number {
    return this.#pending.size
  }

  /** What happened to `cid` here, in order, with times. */
  trace (cid: string): string {
    return `${this.name} ${cid}: ${(this.#trace.get(cid) ?? []).join(' ')}`
  }

  #note (cid: string, what: string): void {
    let list = this.#trace.get(cid)
    if (list === undefined) this.#trace.set(cid, list = [])
    list.push(`${what}+${clock()}`)
  }

  #acked (cid: string | undefined, offset: number, how: 'e' | 'h'): void {
    if (cid === undefined || !this.#trace.has(cid)) return
    this.#note(cid, `${how}@${offset}`)
    if (!this.#pending.delete(cid)) return
    this.acks.set(cid, { cid, offset, epoch: this.#epoch })
    this.#ackWaiters = this.#ackWaiters.filter((w) => {
      if (this.acks.size < w.count) return true
      w.resolve()
      return false
    })
  }

  #refused (cid: string, code: string): void {
    const pending = this.#pending.get(cid)
    if (pending === undefined) return
    this.#note(cid, code[0] as string)
    if (code === 'unavailable' || code === 'overloaded') {
      this.unavailable++
      pending.due = Date.now() + RETRY_MS
    } else {
      this.errors.push(`${cid}: ${code}`)
      this.#pending.delete(cid)
    }
  }

  #send (cid: string, pending: Pending): void {
    pending.attempts++
    this.#note(cid, 's')
    pending.due = Date.now() + SILENT_RETRY_MS
    this.ws.send(JSON.stringify({ type: 'message', text: pending.text, cid }))
  }

  /** Sends one message (and retries it until acknowledged or stopped); returns its cid. */
  post (cid: string): string {
    const pending: Pending = { text: cid, due: 0, attempts: 0 }
    this.#pending.set(cid, pending)
    this.#sent++
    this.#send(cid, pending)
    return cid
  }

  #tick (fresh: boolean, limit: number): void {
    const now = Date.now()
    for (const [cid, pending] of this.#pending) if (pending.due <= now) this.#send(cid, pending)
    if (fresh && this.#pending.size < MAX_IN_FLIGHT && this.#sent < limit) this.post(`${this.name}-${this.#sent}`)
  }

  /** Sends a new message every 1000/rate ms, up to `limit` in all, retrying as it goes. */
  start (rate: number, limit: number): void {
    clearInterval(this.#timer)
    this.#timer = setInterval(() => this.#tick(true, limit), Math.max(1, Math.round(1000 / rate)))
  }

  /** No new messages; only retries. */
  stop (): void {
    clearInterval(this.#timer)
    this.#timer = setInterval(() => this.#tick(false, 0), RETRY_MS)
  }

  /** Resolves once `count` messages are acknowledged. */
  async acked (count: number): Promise<void> {
    if (this.acks.size >= count) return
    await new Promise<void>((resolve) => this.#ackWaiters.push({ count, resolve }))
  }

  close (): void {
    clearInterval(this.#timer)
    this.ws.terminate()
  }
}

/** Resolves once every client has its first `joined`; else rejects within `ms`, naming those without and the errors they got. */
async function joinedAll (clients: Array<{ name: string, joined: Promise<void>, errors?: string[] }>, ms: number): Promise<void> {
  const waiting = new Set(clients)
  try {
    await within(Promise.all(clients.map(async (c) => { await c.joined; waiting.delete(c) })), ms, 'every client to join')
  } catch (err) {
    const names = [...waiting].map((c) => `${c.name} (errors: ${c.errors?.join(', ') ?? '?'})`)
    throw new Error(`${(err as Error).message}; not joined: ${names.join('; ')}`)
  }
}

/** One chat instance of the rig. */
export interface Instance {
  name: string
  url: string
}

/** What a rig's run saw, for the test's comment. */
export interface RunStats {
  faultMs: number
  acked: number
  sent: number
  unavailable: number
  /** Subscribers that never received the closing marker. */
  unsettled: string[]
}

/** The whole setup; see the top of the file. */
export class FaultRig {
  readonly redis: RedisServer
  readonly proxy: TcpProxy | null
  readonly instances: Instance[]
  readonly subscribers: Array<RawSubscriber | TypedSubscriber>
  readonly publishers: Publisher[]
  readonly #rate: number

  private constructor (parts: { redis: RedisServer, proxy: TcpProxy | null, instances: Instance[], subscribers: Array<RawSubscriber | TypedSubscriber>, publishers: Publisher[], rate: number }) {
    this.redis = parts.redis
    this.proxy = parts.proxy
    this.instances = parts.instances
    this.subscribers = parts.subscribers
    this.publishers = parts.publishers
    this.#rate = parts.rate
  }

  static async start (t: Test, opts: RigOptions = {}): Promise<FaultRig> {
    const redis = await startRedis(t, opts.redis)
    const proxy = opts.proxyB === true ? await startProxy(t, redis.port) : null
    const instances: Instance[] = []
    for (const name of ['A', 'B']) {
      const url = name === 'B' && proxy !== null ? proxy.url : redis.url
      const { url: wsUrl } = await listen(t, {
        defaultRoom: ROOM,
        rateLimit: false,
        ...(opts.historySize === undefined ? {} : { historySize: opts.historySize }),
        adapter: redisAdapter({ url, presenceTtlMs: 5000, ...opts.adapter } as RedisAdapterOptions)
      })
      instances.push({ name, url: wsUrl })
    }
    const subscribers: Array<RawSubscriber | TypedSubscriber> = []
    const publishers: Publisher[] = []
    for (const { name, url } of instances) {
      for (let i = 0; i < (opts.subscribers ?? 10); i++) subscribers.push(new RawSubscriber(`sub${name}${i}`, url))
      subscribers.push(new TypedSubscriber(`typed${name}`, url))
      publishers.push(new Publisher(`pub${name}`, url))
    }
    t.teardown(() => {
      for (const s of subscribers) {
        if (s instanceof RawSubscriber) s.close()
        else s.client.close()
      }
      for (const p of publishers) p.close()
    })
    await joinedAll([...subscribers, ...publishers], 10_000)
    return new FaultRig({ redis, proxy, instances, subscribers, publishers, rate: opts.rate ?? 75 })
  }

  /**
   * Connects `count` more raw subscribers to instance `index` (`late0`, …),
   * checked like the others from their first `joined` on. Resolves once they
   * all joined, which may take until a fault heals.
   */
  async addSubscribers (index: number, count: number): Promise<void> {
    const instance = this.instances[index] as Instance
    const added = Array.from({ length: count }, (_, i) => new RawSubscriber(`late${instance.name}${i}`, instance.url))
    this.subscribers.push(...added)
    await joinedAll(added, 20_000)
  }

  /**
   * Publishes on both instances; once each publisher has `before`
   * acknowledged messages, runs `fault` (resolving when it has healed), then
   * publishes until each has `after` more, retries what is left, and sends a
   * closing marker that every subscriber should get last. Each wait is
   * bounded; a wait that runs out is reported by the checks, not thrown.
   */
  async run (t: Test, fault: () => Promise<unknown>, { before = 100, after = 150 } = {}): Promise<RunStats> {
    const limit = 4000
    for (const p of this.publishers) p.start(this.#rate, limit)
    await this.#wait(t, Promise.all(this.publishers.map(async (p) => await p.acked(before))), 10_000, 'acknowledged messages before the fault')
    const started = Date.now()
    await fault()
    const faultMs = Date.now() - started
    await this.#wait(t, Promise.all(this.publishers.map(async (p) => await p.acked(p.acks.size + after))), 20_000, 'acknowledged messages after the fault')
    for (const p of this.publishers) p.stop()
    await this.#wait(t, Promise.all(this.publishers.map(async (p) => await p.acked(p.sent))), 15_000, 'every retry to be acknowledged')
    const marker = this.publishers[0] as Publisher
    const cid = marker.post('end')
    await this.#wait(t, marker.acked(marker.sent), 10_000, 'the closing marker to be acknowledged')
    const settled = await Promise.all(this.subscribers.map(async (s) => await s.received(cid, 10_000)))
    const publishers = this.publishers
    return {
      faultMs,
      acked: publishers.reduce((n, p) => n + p.acks.size, 0),
      sent: publishers.reduce((n, p) => n + p.sent, 0),
      unavailable: publishers.reduce((n, p) => n + p.unavailable, 0),
      unsettled: this.subscribers.filter((_s, i) => settled[i] !== true).map((s) => s.name)
    }
  }

  async #wait (t: Test, promise: Promise<unknown>, ms: number, what: string): Promise<void> {
    try {
      await within(promise, ms, what)
    } catch (err) {
      t.fail((err as Error).message)
    }
  }

  /** Every acknowledged message of both publishers, by cid. */
  get acks (): Map<string, Ack> {
    return new Map(this.publishers.flatMap((p) => [...p.acks]))
  }

  /** Each subscriber's report, by name. */
  reports (): Map<string, LogReport> {
    const acks = this.acks
    return new Map(this.subscribers.map((s) => [s.name, checkLog(s.log, acks)]))
  }

  /**
   * The promise, for every subscriber: each acknowledged message once, in
   * order within an epoch, or a reset `joined` before the gap. One assertion
   * per kind of breach, listing the subscribers that broke it.
   */
  check (t: Test, stats: RunStats): Map<string, LogReport> {
    const reports = this.reports()
    const offenders = (broken: (r: LogReport) => boolean): string[] =>
      [...reports].filter(([, r]) => broken(r)).map(([name, r]) => summary(name, r))
    t.comment(`fault ${stats.faultMs} ms; ${stats.acked} of ${stats.sent} messages acknowledged, ${stats.unavailable} answers "unavailable"`)
    t.same(offenders((r) => r.lost.length > 0), [], 'no acknowledged message is lost without a reset joined')
    t.same(offenders((r) => r.duplicates > 0), [], 'no message is delivered twice')
    const twice = new Set([...reports.values()].flatMap((r) => r.storedTwice.map((entry) => entry.split('@')[0] as string)))
    t.same(offenders((r) => r.storedTwice.length > 0), [], 'no message is stored twice (one cid, two offsets)')
    for (const cid of twice) for (const p of this.publishers) if (cid.startsWith(p.name)) t.comment(p.trace(cid))
    t.same(offenders((r) => r.outOfOrder > 0), [], 'offsets only go up within an epoch')
    t.same(offenders((r) => r.skipped > 0), [], 'no offset is skipped within an epoch')
    t.same(offenders((r) => r.badJoined > 0), [], 'every joined frame is well formed')
    t.same(stats.unsettled, [], 'every subscriber got the closing marker')
    t.same(this.subscribers.flatMap((s) => s instanceof RawSubscriber && s.closed !== null ? [`${s.name}: ${s.closed}`] : []), [], 'no subscriber socket was closed')
    t.same(this.subscribers.flatMap((s) => s instanceof TypedSubscriber && s.reconnects > 0 ? [`${s.name}: ${s.reconnects}`] : []), [], 'the typed clients kept their sockets')
    t.same(this.publishers.flatMap((p) => p.errors), [], 'no send was refused other than "unavailable"')
    return reports
  }
}
