// What the client processes (bench/loadgen.mjs, bench/storm-clients.mjs)
// share: a raw TCP connection upgraded to a WebSocket by hand, the answers
// to a server's control frames, opening many at a bounded concurrency, and
// the IPC loop that lets bench/run.mjs drive them.
import net from 'node:net'
import { OP_CLOSE, OP_PING, OP_PONG, checkUpgradeResponse, clientFrame, upgradeRequest } from './ws.mjs'

export const HOST = '127.0.0.1'
/** An upgrade response head longer than this is no answer we expect: the connection is given up. */
const MAX_HEAD = 16384

/**
 * Connects to HOST:`port` and upgrades to a WebSocket at `path`; sets
 * `owner.socket` and `owner.onReady`. Resolves with null once the owner
 * calls `onReady()` (it alone knows when it is in: upgraded, joined…), or
 * with why not: 'timeout', 'http 503', an error code, or what `on.closed`
 * answers. `on.read(n)` sees every read, `on.upgraded()` runs on the 101,
 * `on.data(chunk)` gets every byte after it, `on.closed(upgraded)` runs when
 * the socket closes. With `readBuffer` every read lands in that one buffer
 * (net's `onread`): `on.data` must copy what it keeps.
 */
export function openWebSocket (owner, { port, path, timeoutMs, readBuffer = null }, on) {
  return new Promise((resolve) => {
    let settled = false
    const done = (reason) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      owner.onReady = null
      resolve(reason)
    }
    const timer = setTimeout(() => {
      done('timeout')
      socket.destroy()
    }, timeoutMs)
    owner.onReady = () => done(null)
    const { request, accept } = upgradeRequest(HOST, port, path)
    let head = Buffer.alloc(0)
    let upgraded = false
    const onChunk = (chunk) => {
      on.read(chunk.length)
      if (upgraded) {
        on.data(chunk)
        return
      }
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) {
        if (head.length > MAX_HEAD) socket.destroy()
        return
      }
      const failure = checkUpgradeResponse(head.subarray(0, end).toString('latin1'), accept)
      if (failure !== null) {
        done(failure)
        socket.destroy()
        return
      }
      upgraded = true
      on.upgraded()
      if (head.length > end + 4) on.data(head.subarray(end + 4))
    }
    const socket = readBuffer === null
      ? net.connect({ host: HOST, port }).on('data', onChunk)
      : net.connect({ host: HOST, port, onread: { buffer: readBuffer, callback: (n, buf) => { onChunk(buf.subarray(0, n)) } } })
    owner.socket = socket
    socket.setNoDelay(true)
    socket.on('connect', () => socket.write(request))
    socket.on('error', (err) => done(err.code ?? 'error'))
    socket.on('close', () => done(on.closed(upgraded)))
  })
}

/**
 * Answers a server's ping with a pong, and its close with a close that
 * echoes the code, then ends `client.socket`; other opcodes are left alone.
 */
export function answerControl (client, op, buf, s, e, len) {
  if (op === OP_PING) {
    client.send(clientFrame(OP_PONG, Buffer.from(buf.subarray(s, e))))
  } else if (op === OP_CLOSE) {
    client.send(clientFrame(OP_CLOSE, len >= 2 ? buf.subarray(s, s + 2) : undefined))
    client.socket.end()
  }
}

/**
 * Opens each of `items` with `open(item, msLeft)`, `concurrency` at a time,
 * all within `timeoutMs`; resolves with the failures counted by reason.
 */
export async function openAll (items, open, { concurrency, timeoutMs }) {
  const failures = {}
  let next = 0
  const deadline = Date.now() + timeoutMs
  async function lane () {
    while (next < items.length) {
      const item = items[next++]
      const left = deadline - Date.now()
      const failure = left <= 0 ? 'timeout' : await open(item, left)
      if (failure !== null) failures[failure] = (failures[failure] ?? 0) + 1
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane))
  return failures
}

/**
 * Runs `commands` for the runner over IPC: { id, cmd, ...args } gets
 * { id, result } or { id, error }; `exit` calls `onExit` and leaves.
 */
export function serveCommands (commands, onExit) {
  process.on('message', async ({ id, cmd, ...args }) => {
    if (cmd === 'exit') {
      onExit()
      process.exit(0)
    }
    try {
      process.send({ id, result: await commands[cmd](args) })
    } catch (err) {
      process.send({ id, error: String(err?.stack ?? err) })
    }
  })
  // No orphan: leave with the runner.
  process.on('disconnect', () => process.exit(0))
}
