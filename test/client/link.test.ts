import { once } from 'node:events'
import t from 'tap'
import type { Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { Backoff } from '../../lib/client/backoff.js'
import { Link } from '../../lib/client/link.js'
import type { LinkEvents } from '../../lib/client/link.js'
import type { Params } from '../../lib/client/params.js'
import type { WebSocketLike } from '../../lib/client/types.js'
import { within } from '../helpers/chat.js'

/** A bare ws server on a free loopback port, closed when the test ends. */
async function server (t: Test): Promise<{ wss: WebSocketServer, url: string }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  t.teardown(() => new Promise((resolve) => {
    for (const socket of wss.clients) socket.terminate()
    wss.close(resolve)
  }))
  await once(wss, 'listening')
  return { wss, url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/` }
}

/** Link events recorded in order; `next(kind)` waits for the next of a kind. */
function recorder (url: string): LinkEvents & { log: string[], next: (kind: string) => Promise<string> } {
  const log: string[] = []
  const waiting: Array<{ kind: string, resolve: (entry: string) => void }> = []
  const record = (entry: string): void => {
    log.push(entry)
    const i = waiting.findIndex((w) => entry.startsWith(w.kind))
    if (i >= 0) waiting.splice(i, 1)[0]?.resolve(entry)
  }
  return {
    log,
    url: (params: Params) => `${url}?${new URLSearchParams(params).toString()}`,
    message: (data) => record(`message ${data}`),
    closed: (code, reason) => record(`closed ${code} ${reason}`),
    retrying: () => record('retrying'),
    next: async (kind) => await within(new Promise<string>((resolve) => waiting.push({ kind, resolve })), 3000, kind)
  }
}

const fast = new Backoff({ initialMs: 5, maxMs: 20 })

t.test('dials with the app\'s params, passes text frames on, writes JSON, and reports the close', async (t) => {
  const { wss, url } = await server(t)
  const on = recorder(url)
  const link = new Link(WebSocket, fast, async () => ({ token: 'abc' }), on)
  t.teardown(() => link.stop(1000, 'done'))
  link.open()
  const [peer, request] = await within(once(wss, 'connection'), 3000, 'a socket') as [WebSocket, { url: string }]
  t.equal(request.url, '/?token=abc')
  t.ok(link.socket !== null)
  await once(link.socket as unknown as WebSocket, 'open')

  const got = once(peer, 'message')
  link.write({ type: 'leave', room: 'lobby' })
  t.same(JSON.parse(String((await got)[0])), { type: 'leave', room: 'lobby' })

  const message = on.next('message')
  peer.send('hello')
  peer.send(Buffer.from('binary is not a frame'), { binary: true })
  t.equal(await message, 'message hello')

  const closed = on.next('closed')
  peer.close(4321, 'bye')
  t.equal(await closed, 'closed 4321 bye')
  t.equal(link.socket, null)
  t.same(on.log, ['message hello', 'closed 4321 bye'], 'the binary frame was not passed on')
})

t.test('retry waits the backoff, then dials again; opened() starts the backoff over', async (t) => {
  const { wss, url } = await server(t)
  const on = recorder(url)
  let calls = 0
  const link = new Link(WebSocket, fast, () => ({ n: String(++calls) }), on)
  t.teardown(() => link.stop(1000, 'done'))
  link.open()
  await within(once(wss, 'connection'), 3000, 'the first socket')
  const closed = on.next('closed')
  for (const socket of wss.clients) socket.terminate()
  t.match(await closed, /^closed 1006/)
  link.retry()
  t.same(on.log.at(-1), 'retrying')
  const [, again] = await within(once(wss, 'connection'), 3000, 'the second socket') as [WebSocket, { url: string }]
  t.equal(again.url, '/?n=2', 'params asked again for each attempt')
  link.opened()
})

t.test('a failed params or bad params is a failed attempt, retried after the backoff', async (t) => {
  const { wss, url } = await server(t)
  const on = recorder(url)
  let calls = 0
  const link = new Link(WebSocket, fast, () => {
    calls++
    if (calls === 1) throw new Error('no token yet')
    if (calls === 2) return null as unknown as Params
    return { ok: '1' }
  }, on)
  t.teardown(() => link.stop(1000, 'done'))
  link.open()
  const [, request] = await within(once(wss, 'connection'), 3000, 'a socket after two failures') as [WebSocket, { url: string }]
  t.equal(request.url, '/?ok=1')
  t.same(on.log, ['retrying', 'retrying'])
})

t.test('stop closes the socket with its code and cancels a pending retry', async (t) => {
  const { wss, url } = await server(t)
  const on = recorder(url)
  const link = new Link(WebSocket, fast, undefined, on)
  link.open()
  const [peer] = await within(once(wss, 'connection'), 3000, 'a socket') as [WebSocket]
  await once(link.socket as unknown as WebSocket, 'open')
  const gone = once(peer, 'close')
  link.stop(1000, 'client closed')
  const [code, reason] = await within(gone, 3000, 'the close') as [number, Buffer]
  t.equal(code, 1000)
  t.equal(String(reason), 'client closed')
  t.same(on.log, [], 'a socket it closed itself is not reported')

  const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
  const before = timers()
  const waiting = new Link(WebSocket, new Backoff({ initialMs: 60_000, maxMs: 60_000 }), () => { throw new Error('no') }, on)
  waiting.open()
  t.equal(timers(), before + 1, 'a retry waits')
  waiting.stop(1000, 'client closed')
  t.equal(timers(), before, 'the retry timer is gone')
})

t.test('a socket that closes without a code is a drop (1006)', async (t) => {
  let fake: WebSocketLike | undefined
  class CodelessSocket implements WebSocketLike {
    onmessage = null
    onclose: ((event: never) => void) | null = null
    onerror: ((event: never) => void) | null = null
    constructor () { fake = this }
    send (): void {}
    close (): void {}
  }
  const on = recorder('ws://unused/')
  const link = new Link(CodelessSocket, fast, undefined, on)
  t.teardown(() => link.stop(1000, 'done'))
  link.open()
  const closed = on.next('closed')
  ;(fake?.onerror as unknown as (event: unknown) => void)({})
  ;(fake?.onclose as unknown as (event: unknown) => void)({})
  t.equal(await closed, 'closed 1006 ')
})

t.test('stopped from within retrying, it does not try again', async (t) => {
  const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
  const before = timers()
  const on = recorder('ws://unused/')
  const link = new Link(WebSocket, fast, () => { throw new Error('no params') }, on)
  on.retrying = () => link.stop(1000, 'client closed')
  link.open()
  t.equal(timers(), before, 'no retry timer')
})
