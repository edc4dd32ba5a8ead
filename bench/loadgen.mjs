// One load generator process, driven by bench/run.mjs over IPC. It opens raw
// TCP connections to 127.0.0.1, does the WebSocket upgrade by hand and reads
// server frames with a small incremental parser: most clients only count
// message frames; a few "sampling" clients decode the payload for latency.
// Publishers send masked frames open-loop: a 1 ms timer sends every message
// whose scheduled time has come (catch-up, so a late timer sends a burst),
// each carrying its scheduled send time, so queueing anywhere (the
// publisher's own socket included) shows up as latency.
//
// Commands (process.send({ id, cmd, ...args }) → { id, result } or { id, error }):
//   connect  { port, kind, subs, pubs, pubsCount, sample, roomSize, room, concurrency, timeoutMs }
//            (roomSize > 0: fastify-chat sockets go to rooms of that many instead of the default room;
//            room: every fastify-chat socket of every load generator joins that one room)
//   reset    zero the counters and the histogram
//   publish  { rate, durationMs, warmupMs, reconnect, extras }
//                                   rate per publisher, msg/s; resolves when all are sent;
//                                   with `warmupMs`, publishing starts that long before the
//                                   measured `durationMs` and its messages are delivered and
//                                   counted but not sampled for latency
//                                   with `extras` (fastify-chat only), every subscriber also sends a
//                                   `read` of the latest offset it has seen and every publisher a
//                                   `typing` signal, once per second each, spread over the second
//                                   (`extras: 'reads'` or `'signals'`: only those)
//                                   with `reconnect`, a publisher the server closed is replaced
//                                   50 ms later (what was due meanwhile is skipped, not sent)
//   stop                            ends a running publish early
//   pause    { count }              stop reading on the first `count` subscribers
//   resume                          read again on paused subscribers
//   close    { code }               every subscriber sends a close frame and ends its socket, all at once
//   stats    counters, histogram and closes so far (`bytes`: everything the sockets read, upgrade responses included)
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks'
import { Histogram } from './lib/histogram.mjs'
import { answerControl, openAll, openWebSocket, serveCommands } from './lib/raw-client.mjs'
import { FrameReader, OP_CLOSE, OP_TEXT, OP_BINARY, clientFrame, clientFrameSize, writeClientFrame } from './lib/ws.mjs'

const PAYLOAD_BYTES = 64
const MARK = 0x7e // '~' around the timestamp in the payload

// Every socket reads into this one buffer (net's `onread`): no allocation per
// read. Whatever must outlive a read is copied (see FrameReader).
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)

/** One clock for every process on this machine, in ms with µs precision. */
const now = () => performance.timeOrigin + performance.now()

const C = (s) => s.charCodeAt(0)
const CH_M = C('m'); const CH_J = C('j'); const CH_E = C('e')
const CH_0 = C('0'); const CH_2 = C('2'); const CH_4 = C('4')

let roomSize = 0
let oneRoom = null
// The room of fastify-chat client `i`: the server's default room unless the connect says otherwise.
const DEFAULT_ROOM = 'bench'
const roomOf = (i) => oneRoom ?? (roomSize > 0 ? `r${process.pid}-${Math.floor(i / roomSize)}` : DEFAULT_ROOM)
const PATHS = {
  chat: (i) => `/chat?name=lg${process.pid}-${i}` + (oneRoom !== null || roomSize > 0 ? `&room=${roomOf(i)}` : ''),
  naive: () => '/chat',
  socketio: () => '/socket.io/?EIO=4&transport=websocket'
}

const totals = { received: 0, echoes: 0, errors: 0, other: 0, bytes: 0 }
const hist = new Histogram()
/** closes[group][code] = count; code 1006 = connection gone without a close frame. */
const closes = {}
const clients = []
let kind = 'chat'
let serverPort = 0
let stopPublishing = null
// Messages scheduled before this time (the publish's warm-up) are not sampled for latency.
let sampleFrom = -Infinity

// How late this process is: event-loop delay and GC pauses since the last reset.
const loopDelay = monitorEventLoopDelay({ resolution: 5 })
loopDelay.enable()
const gc = { count: 0, ms: 0, maxMs: 0 }
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gc.count++
    gc.ms += e.duration
    if (e.duration > gc.maxMs) gc.maxMs = e.duration
  }
}).observe({ entryTypes: ['gc'] })

function ms (x) {
  return Math.round(x * 1000) / 1000
}

/** The 64-byte payload: `~<scheduled send time, ms>~` padded with x. */
function payloadText (ts) {
  const stamp = `~${ts.toFixed(3)}~`
  return stamp + 'x'.repeat(PAYLOAD_BYTES - stamp.length)
}

/** Reads the timestamp between the two marks of a payload, or NaN. */
function readStamp (buf, start, end) {
  const at = buf.indexOf(MARK, start)
  if (at < 0 || at >= end) return NaN
  let value = 0
  let scale = 0
  for (let i = at + 1; i < end; i++) {
    const b = buf[i]
    if (b === MARK) return scale === 0 ? value : value / scale
    if (b === 0x2e) scale = 1
    else if (b >= 0x30 && b <= 0x39) {
      value = value * 10 + (b - 0x30)
      if (scale !== 0) scale *= 10
    } else return NaN
  }
  return NaN
}

class Client {
  constructor (index, role, { counts, sample }) {
    this.index = index
    this.role = role // 'sub' | 'pub'
    this.counts = counts
    this.sample = sample
    this.group = role
    this.socket = null
    this.ready = false
    this.closed = false
    this.closeCode = null
    this.chunkTime = 0
    // Messages received: with offsets starting at 1 in a fresh room, the latest offset seen.
    this.got = 0
    this.reader = new FrameReader((op, buf, s, e, len) => this.onFrame(op, buf, s, e, len), sample)
  }

  send (buf) {
    if (!this.closed && this.socket.writable) this.socket.write(buf)
  }

  sendText (text) {
    const out = Buffer.allocUnsafe(clientFrameSize(text.length))
    writeClientFrame(out, 0, OP_TEXT, text)
    this.send(out)
  }

  onData (buf) {
    if (this.sample) this.chunkTime = now()
    this.reader.push(buf)
  }

  onFrame (op, buf, s, e, len) {
    if (op === OP_TEXT || op === OP_BINARY) {
      this.onDataFrame(buf, s, e, len)
      return
    }
    if (op === OP_CLOSE) this.closeCode = len >= 2 ? buf.readUInt16BE(s) : 1005
    answerControl(this, op, buf, s, e, len)
  }

  /** A data frame: classify it by its first bytes, count messages, decode a sample. */
  onDataFrame (buf, s, e, len) {
    let message = false
    if (kind === 'naive') {
      message = true
    } else if (kind === 'chat') {
      // {"type":"<t>… : the type's first letter is at 9.
      const t = e - s > 9 ? buf[s + 9] : 0
      if (t === CH_M) message = true
      else if (t === CH_J) this.markReady()
      else if (t === CH_E) totals.errors++
      else totals.other++
    } else {
      // Engine.IO v4 / Socket.IO v5 packets.
      const b0 = buf[s]
      const b1 = len > 1 ? buf[s + 1] : 0
      if (b0 === CH_4 && b1 === CH_2) message = true
      else if (b0 === CH_2 && len === 1) this.sendText('3')
      else if (b0 === CH_0) this.sendText('40')
      else if (b0 === CH_4 && b1 === CH_0) this.markReady()
      else totals.other++
    }
    if (!message) return
    this.got++
    if (!this.counts) {
      totals.echoes++
      return
    }
    totals.received++
    if (this.sample) {
      const ts = readStamp(buf, s, e)
      if (ts >= sampleFrom) hist.record(Math.max(0, this.chunkTime - ts))
    }
  }

  markReady () {
    if (this.ready) return
    this.ready = true
    this.onReady?.()
  }

  onClosed () {
    if (this.closed) return
    this.closed = true
    const code = this.closeCode ?? 1006
    closes[this.group] ??= {}
    closes[this.group][code] = (closes[this.group][code] ?? 0) + 1
  }

  /** Resolves once ready (upgraded, and joined / connected where the protocol says so), or with a failure reason. */
  open (port, timeoutMs) {
    return openWebSocket(this, { port, path: PATHS[kind](this.index), timeoutMs, readBuffer: READ_BUFFER }, {
      read: (n) => { totals.bytes += n },
      upgraded: () => { if (kind === 'naive') this.markReady() },
      data: (chunk) => this.onData(chunk),
      closed: (upgraded) => {
        if (upgraded) this.onClosed()
        return this.closeCode === null ? 'closed' : `closed ${this.closeCode}`
      }
    })
  }
}

async function connect ({ port, kind: k, subs, pubs, pubsCount, sample, roomSize: size = 0, room = null, concurrency = 200, timeoutMs = 60_000 }) {
  kind = k
  serverPort = port
  roomSize = size
  oneRoom = room
  const started = now()
  const fresh = []
  for (let i = 0; i < subs; i++) fresh.push(new Client(clients.length + fresh.length, 'sub', { counts: true, sample: false }))
  for (let i = 0; i < pubs; i++) fresh.push(new Client(clients.length + fresh.length, 'pub', { counts: pubsCount, sample: false }))
  // Sampling clients spread evenly over the counting ones.
  const counting = fresh.filter((c) => c.counts)
  const picks = Math.min(sample, counting.length)
  for (let j = 0; j < picks; j++) {
    const c = counting[Math.floor(j * counting.length / picks)]
    c.sample = true
    c.reader.keep = true
  }
  clients.push(...fresh)
  const failures = await openAll(fresh, (client, left) => client.open(port, left), { concurrency, timeoutMs })
  return {
    ready: fresh.filter((c) => c.ready && !c.closed).length,
    failures,
    sampled: fresh.filter((c) => c.sample).length,
    ms: ms(now() - started)
  }
}

function reset () {
  totals.received = 0
  totals.echoes = 0
  totals.errors = 0
  totals.other = 0
  totals.bytes = 0
  hist.reset()
  loopDelay.reset()
  gc.count = 0
  gc.ms = 0
  gc.maxMs = 0
  return true
}

/** Every publisher sends `rate` msg/s for `durationMs`, phase-shifted so they do not send in lockstep. */
function publish ({ rate, durationMs, warmupMs = 0, reconnect = false, extras = false }) {
  extrasSent = extras
  const pubs = clients.filter((c) => c.role === 'pub' && !c.closed)
  const interval = 1000 / rate
  const total = Math.max(1, Math.floor(rate * (warmupMs + durationMs) / 1000))
  const sio = kind === 'socketio'
  const frameSize = clientFrameSize(PAYLOAD_BYTES + (sio ? 10 : 0))
  const sent = new Array(pubs.length).fill(0)
  const resync = new Array(pubs.length).fill(false)
  const replacing = new Array(pubs.length).fill(false)
  const t0 = now() + 2
  sampleFrom = t0 + warmupMs
  let maxLag = 0
  let skipped = 0
  let reconnects = 0
  let running = true
  const replace = (p) => {
    replacing[p] = true
    reconnects++
    setTimeout(async () => {
      if (!running) return
      const fresh = new Client(clients.length, 'pub', { counts: pubs[p].counts, sample: false })
      clients.push(fresh)
      if (await fresh.open(serverPort, 10_000) === null) {
        pubs[p] = fresh
        resync[p] = true
      }
      replacing[p] = false
    }, 50)
  }
  return new Promise((resolve) => {
    const finish = () => {
      running = false
      clearInterval(timer)
      clearInterval(extraTimer)
      clearTimeout(guard)
      stopPublishing = null
      resolve({
        sent: sent.reduce((a, b) => a + b, 0) - skipped,
        planned: total * pubs.length,
        skipped,
        reconnects,
        maxLagMs: ms(maxLag),
        publishers: pubs.length
      })
    }
    const tick = () => {
      const t = now()
      let pending = false
      for (let p = 0; p < pubs.length; p++) {
        const pub = pubs[p]
        const phase = (p / pubs.length) * interval
        const due = Math.min(total, Math.floor((t - t0 - phase) / interval) + 1)
        if (pub.closed) {
          if (!reconnect) continue
          if (!replacing[p] && reconnects < 1000) replace(p)
          if (sent[p] < total) pending = true
          continue
        }
        if (resync[p]) {
          resync[p] = false
          if (due > sent[p]) {
            skipped += due - sent[p]
            sent[p] = due
          }
        }
        const from = sent[p]
        if (due > from) {
          const out = Buffer.allocUnsafe((due - from) * frameSize)
          let at = 0
          for (let i = from; i < due; i++) {
            const text = payloadText(t0 + phase + i * interval)
            at = writeClientFrame(out, at, OP_TEXT, sio ? `42["m","${text}"]` : text)
          }
          pub.send(out)
          const lag = t - (t0 + phase + from * interval)
          if (lag > maxLag) maxLag = lag
          sent[p] = due
        }
        if (sent[p] < total) pending = true
      }
      if (!pending) finish()
    }
    const timer = setInterval(tick, 1)
    const extraTimer = extras && kind === 'chat' ? setInterval(sendExtras, 1000 / EXTRA_SLICES) : undefined
    stopPublishing = finish
    // Bounded even if the event loop is swamped: stop sending 5 s past the end.
    const guard = setTimeout(finish, warmupMs + durationMs + 5000)
  })
}

// The extras go out over each second, a slice of the clients every 10 ms, as
// independent users' would: all at once they would be a burst no room sees.
const EXTRA_SLICES = 100
let extraSlice = 0
// What the extras are: true for both, or 'reads' or 'signals' alone.
let extrasSent = false

/** One slice of a second's worth of the chatty extras: each subscriber reads up to what it has, each publisher types. */
function sendExtras () {
  const slice = extraSlice++ % EXTRA_SLICES
  for (const c of clients) {
    if (c.closed || !c.ready || c.index % EXTRA_SLICES !== slice) continue
    const room = roomOf(c.index)
    if (c.role === 'sub') {
      if (extrasSent !== 'signals') c.sendText(`{"type":"read","room":"${room}","offset":${c.got}}`)
    } else if (extrasSent !== 'reads') {
      c.sendText(`{"type":"signal","room":"${room}","name":"typing"}`)
    }
  }
}

function subscribers () {
  return clients.filter((c) => c.role === 'sub')
}

function pause ({ count }) {
  let paused = 0
  for (const c of subscribers()) {
    if (paused === count) break
    if (c.closed || c.sample) continue
    c.socket.pause()
    c.counts = false
    c.sample = false
    c.reader.keep = false
    c.group = 'paused'
    paused++
  }
  return { paused }
}

function resume () {
  for (const c of clients) if (c.group === 'paused') c.socket.resume()
  return true
}

function close ({ code = 1001 }) {
  const payload = Buffer.allocUnsafe(2)
  payload.writeUInt16BE(code)
  let closing = 0
  for (const c of subscribers()) {
    if (c.closed || c.socket === null) continue
    c.send(clientFrame(OP_CLOSE, payload))
    c.socket.end()
    closing++
  }
  return { closing }
}

function stats () {
  const open = {}
  for (const c of clients) if (c.ready && !c.closed) open[c.group] = (open[c.group] ?? 0) + 1
  return {
    ...totals,
    hist: hist.toJSON(),
    closes,
    open,
    loop: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
    gc: { ...gc }
  }
}

function stop () {
  stopPublishing?.()
  return true
}

serveCommands({ connect, reset, publish, stop, pause, resume, close, stats }, () => {
  for (const c of clients) c.socket?.destroy()
})
