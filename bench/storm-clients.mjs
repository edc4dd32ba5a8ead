// The clients of the storm scenario (bench/scenarios/storm.mjs), in one
// process driven over IPC like bench/loadgen.mjs. Each member keeps what a
// resuming client keeps (its resume token, the room's epoch, the highest
// offset it saw) and which offsets it got, so that after a restart the runner
// can check, client by client, that no acknowledged message is missing or
// came twice. One publisher sends messages with cids; a message is
// acknowledged when its echo (the message with that cid) comes back.
//
// Commands (process.send({ id, cmd, ...args }) → { id, result } or { id, error }):
//   connect    { port, kind, count, room, concurrency, timeoutMs }   members join, `concurrency` at a time
//   publisher  { port, room, timeoutMs }       opens the publisher
//   publish    { rate }                        starts sending, `rate` msg/s, until `stop`; skips while disconnected
//   stop                                       stops sending; answers { sent, skipped, acked, errors }
//   closed                                     how many members' sockets are closed
//   rejoin     { timeoutMs, spreadMs }         every member (and the publisher) reconnects, at once or spread
//                                              over spreadMs, with `?resume=` and `?since=` on fastify-chat;
//                                              answers when all are in
//   caughtUp   { offset }                      how many members have seen `offset` or later
//   verify     { acked }                       per member: acknowledged offsets missing, and duplicates
//   stats                                      bytes read, frames by kind
import { answerControl, openAll, openWebSocket, serveCommands } from './lib/raw-client.mjs'
import { FrameReader, OP_TEXT, clientFrameSize, writeClientFrame } from './lib/ws.mjs'

// A `joined` may list thousands of users before presence is capped: keep it whole.
const MAX_FRAME = 16 * 1024 * 1024
const RETRY_MS = 100
const OFFSET_KEY = Buffer.from('"offset":')
const HISTORY_KEY = Buffer.from(',"history":[')
const USERS_KEY = Buffer.from('],"users":')

const C = (s) => s.charCodeAt(0)
const CH_W = C('w'); const CH_J = C('j'); const CH_M = C('m'); const CH_E = C('e')

const totals = { bytes: 0, welcome: 0, joined: 0, messages: 0, errors: 0, other: 0 }
const members = []
let publisher = null
let kind = 'chat'
let port = 0
let room = 'bench'

/** The digits after `"offset":` at or after `from`, before `end`; NaN when there are none. */
function offsetAt (buf, from, end) {
  const at = buf.indexOf(OFFSET_KEY, from)
  if (at < 0 || at >= end) return { value: NaN, next: end }
  let i = at + OFFSET_KEY.length
  let value = 0
  const first = i
  for (; i < end; i++) {
    const b = buf[i]
    if (b < 0x30 || b > 0x39) break
    value = value * 10 + (b - 0x30)
  }
  return { value: i === first ? NaN : value, next: i }
}

class Member {
  constructor (index, role = 'member') {
    this.index = index
    this.role = role
    this.socket = null
    this.open = false
    this.ready = false
    this.id = null
    this.firstId = null
    this.resume = null
    this.epoch = null
    this.start = -1 // offsets after this one must all arrive, once
    this.last = 0
    this.seen = new Uint8Array(1024)
    this.duplicates = 0
    this.recovered = null
    this.onReady = null
    this.onEcho = null
    this.reader = new FrameReader((op, buf, s, e, len) => this.#onFrame(op, buf, s, e, len), true, MAX_FRAME)
  }

  path (rejoin) {
    if (kind !== 'chat') return '/chat'
    let path = `/chat?name=${this.role === 'member' ? 'st' : 'pub'}${process.pid}-${this.index}&room=${room}`
    if (rejoin && this.epoch !== null) path += `&since=${encodeURIComponent(`${this.epoch}:${this.last}`)}`
    if (rejoin && this.resume !== null) path += `&resume=${encodeURIComponent(this.resume)}`
    return path
  }

  send (buf) {
    if (this.open && this.socket.writable) this.socket.write(buf)
  }

  #onFrame (op, buf, s, e, len) {
    if (op === OP_TEXT) this.#onText(buf, s, e)
    else answerControl(this, op, buf, s, e, len)
  }

  #onText (buf, s, e) {
    const t = e - s > 9 ? buf[s + 9] : 0
    if (t === CH_M) {
      totals.messages++
      const { value } = offsetAt(buf, s, e)
      if (!Number.isNaN(value)) this.#mark(value)
      if (this.onEcho !== null) this.onEcho(buf, s, e, value)
    } else if (t === CH_J) {
      totals.joined++
      this.#onJoined(buf, s, e)
    } else if (t === CH_W) {
      totals.welcome++
      const welcome = JSON.parse(buf.toString('utf8', s, e))
      this.id = welcome.id
      this.firstId ??= welcome.id
      if (welcome.resume !== undefined) this.resume = welcome.resume
    } else if (t === CH_E) {
      totals.errors++
    } else {
      totals.other++
    }
  }

  /** `joined`: the head's epoch, offset and recovered, then the offsets in its history (which comes before `users`). */
  #onJoined (buf, s, e) {
    const historyAt = buf.indexOf(HISTORY_KEY, s)
    const headEnd = historyAt >= 0 && historyAt < e ? historyAt : e
    const head = JSON.parse(buf.toString('utf8', s, headEnd) + (headEnd === e ? '' : '}'))
    if (head.room !== room) return
    const rejoin = this.start >= 0
    if (!rejoin) {
      this.start = head.offset
      this.last = head.offset
    } else {
      this.recovered = head.recovered === true
      if (historyAt >= 0 && historyAt < e) {
        const usersAt = buf.indexOf(USERS_KEY, historyAt)
        const historyEnd = usersAt >= 0 && usersAt < e ? usersAt : e
        for (let at = historyAt; ;) {
          const { value, next } = offsetAt(buf, at, historyEnd)
          if (Number.isNaN(value)) break
          this.#mark(value)
          at = next
        }
      }
      if (head.offset > this.last) this.last = head.offset
    }
    this.epoch = head.epoch
    this.#ready()
  }

  #mark (offset) {
    if (this.start < 0 || offset <= this.start) return
    const i = offset - this.start
    if (i >= this.seen.length) {
      const grown = new Uint8Array(Math.max(this.seen.length * 2, i + 1))
      grown.set(this.seen)
      this.seen = grown
    }
    if (this.seen[i] > 0) this.duplicates++
    if (this.seen[i] < 255) this.seen[i]++
    if (offset > this.last) this.last = offset
  }

  #ready () {
    if (this.ready) return
    this.ready = true
    this.onReady?.()
  }

  /** Resolves with null once in (joined; on the naive loop, upgraded), or with why not. */
  connect (rejoin, timeoutMs) {
    this.ready = false
    this.reader = new FrameReader(this.reader.onFrame, true, MAX_FRAME)
    return openWebSocket(this, { port, path: this.path(rejoin), timeoutMs }, {
      read: (n) => { totals.bytes += n },
      upgraded: () => {
        this.open = true
        if (kind !== 'chat') this.#ready()
      },
      data: (chunk) => this.reader.push(chunk),
      closed: () => {
        this.open = false
        return 'closed'
      }
    })
  }

  /** `connect`, again after RETRY_MS while it fails, until `deadline`; resolves with the attempts it took, or null. */
  async connectUntil (rejoin, deadline) {
    for (let attempts = 1; ; attempts++) {
      const left = deadline - Date.now()
      if (left <= 0) return null
      if (await this.connect(rejoin, left) === null) return attempts
      await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_MS, Math.max(0, deadline - Date.now()))))
    }
  }
}

async function connect ({ port: p, kind: k, count, room: r, concurrency = 25, timeoutMs = 60_000 }) {
  port = p
  kind = k
  room = r
  const fresh = []
  for (let i = 0; i < count; i++) fresh.push(new Member(members.length + i))
  members.push(...fresh)
  const failures = await openAll(fresh, (m, left) => m.connect(false, left), { concurrency, timeoutMs })
  return { ready: fresh.filter((m) => m.ready && m.open).length, failures }
}

// ------------------------------------------------------------ publisher ---

const sending = { timer: null, seq: 0, sent: 0, skipped: 0, acked: [], errors: 0 }

async function openPublisher ({ port: p, room: r, timeoutMs = 30_000 }) {
  port = p
  room = r
  publisher = new Member(0, 'publisher')
  publisher.onEcho = (buf, s, e, offset) => {
    const frame = JSON.parse(buf.toString('utf8', s, e))
    // Only the publisher sends cids; its id may change if the restart loses it.
    if (frame.cid !== undefined) sending.acked.push(offset)
  }
  const failure = await publisher.connect(false, timeoutMs)
  if (failure !== null) throw new Error(`publisher: ${failure}`)
  return true
}

function frameFor (seq) {
  const text = JSON.stringify({ type: 'message', text: `storm ${seq}`, cid: `c${seq}` })
  const out = Buffer.allocUnsafe(clientFrameSize(text.length))
  writeClientFrame(out, 0, OP_TEXT, text)
  return out
}

/** Open-loop at `rate`: each 1 ms tick sends what is due; what falls due while the socket is down is skipped. */
function publish ({ rate }) {
  const t0 = performance.now()
  let due = 0
  sending.timer = setInterval(() => {
    const now = Math.floor((performance.now() - t0) * rate / 1000)
    for (; due < now; due++) {
      if (!publisher.open) {
        sending.skipped++
        continue
      }
      publisher.send(frameFor(++sending.seq))
      sending.sent++
    }
  }, 1)
  return true
}

function stop () {
  clearInterval(sending.timer)
  sending.timer = null
  return { sent: sending.sent, skipped: sending.skipped, acked: sending.acked, errors: sending.errors }
}

// ---------------------------------------------------------------- storm ---

function closed () {
  return members.filter((m) => !m.open).length + (publisher !== null && !publisher.open ? 1 : 0)
}

/** Every member reconnects, each after a random delay in [0, spreadMs) (0: all at once, the worst case). */
async function rejoin ({ timeoutMs, spreadMs = 0 }) {
  const started = performance.now()
  const deadline = Date.now() + timeoutMs
  let lastMs = 0
  const publisherBack = publisher === null ? Promise.resolve(null) : publisher.connectUntil(true, deadline)
  const attempts = await Promise.all(members.map(async (m) => {
    if (spreadMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * spreadMs))
    const n = await m.connectUntil(true, deadline)
    if (n !== null) lastMs = Math.max(lastMs, performance.now() - started)
    return n
  }))
  await publisherBack
  const done = attempts.filter((n) => n !== null)
  return {
    members: members.length,
    rejoined: done.length,
    retried: done.filter((n) => n > 1).length,
    attempts: done.reduce((a, n) => a + n, 0),
    recovered: members.filter((m) => m.recovered === true).length,
    idsKept: members.filter((m) => m.id !== null && m.id === m.firstId).length,
    lastMs,
    publisherIn: publisher === null ? null : publisher.ready
  }
}

function caughtUp ({ offset }) {
  return members.filter((m) => m.last >= offset).length
}

/** Per member: acknowledged offsets after its first join that it never got, and offsets it got twice. */
function verify ({ acked }) {
  const r = { members: members.length, clean: 0, withMissing: 0, missing: 0, withDuplicates: 0, duplicates: 0 }
  for (const m of members) {
    let missing = 0
    for (const offset of acked) {
      if (offset <= m.start) continue
      const i = offset - m.start
      if (i >= m.seen.length || m.seen[i] === 0) missing++
    }
    if (missing > 0) {
      r.withMissing++
      r.missing += missing
    }
    if (m.duplicates > 0) {
      r.withDuplicates++
      r.duplicates += m.duplicates
    }
    if (missing === 0 && m.duplicates === 0 && m.start >= 0) r.clean++
  }
  return r
}

function stats () {
  return { ...totals }
}

serveCommands({ connect, publisher: openPublisher, publish, stop, closed, rejoin, caughtUp, verify, stats }, () => {
  for (const m of members) m.socket?.destroy()
  publisher?.socket?.destroy()
})
