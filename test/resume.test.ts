import t from 'tap'
import WebSocket from 'ws'
import { connect } from '../lib/client.js'
import { resumeId, resumeToken } from '../lib/resume.js'
import { Client, join, listen } from './helpers/chat.js'

t.test('resume tokens verify only with their secret', async (t) => {
  const token = resumeToken('abc.def', 's1')
  t.equal(resumeId(token, 's1'), 'abc.def', 'ids may contain dots')
  t.equal(resumeId(token, 's2'), null)
  t.equal(resumeId(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'), 's1'), null, 'a changed mac fails')
  for (const bad of [undefined, 5, '', 'nodot', '.mac', 'x'.repeat(300)]) t.equal(resumeId(bad, 's1'), null, String(bad))
})

t.test('a reconnect with the resume token keeps the id; a forged one does not', async (t) => {
  const { url } = await listen(t)
  const first = await Client.connect(url, '/chat?name=ann')
  const welcome = await first.expect('welcome')
  t.type(welcome.resume, 'string')
  const again = await Client.connect(url, `/chat?resume=${encodeURIComponent(welcome.resume as string)}`)
  t.equal((await again.expect('welcome')).id, welcome.id)
  const forged = await Client.connect(url, `/chat?resume=${encodeURIComponent(`${welcome.id}.AAAAAAAAAAAAAAAAAAAAAA`)}`)
  t.not((await forged.expect('welcome')).id, welcome.id)
})

t.test('an anonymous page that reconnects within the grace period flashes no leave/join', async (t) => {
  const { url } = await listen(t, { presenceGraceMs: 60_000 })
  const watcher = await join(url, '?name=watcher')
  const sockets: WebSocket[] = []
  class Tracked extends WebSocket {
    constructor (address: string) {
      super(address)
      sockets.push(this)
    }
  }
  const page = connect(`${url}/chat?name=page`, { WebSocket: Tracked, backoff: { initialMs: 5, maxMs: 20 } })
  t.teardown(() => page.close())
  t.equal((await watcher.expect('presence')).event, 'join')
  const id = page.id
  const reopened = new Promise<void>((resolve) => {
    let dropped = false
    page.on('status', (s) => {
      if (s === 'reconnecting') dropped = true
      if (s === 'open' && dropped) resolve()
    })
  })
  // The page's connection drops (from its side, as a network loss would look).
  sockets.at(-1)?.terminate()
  await reopened
  t.equal(page.id, id, 'same id after the reconnect')
  watcher.send('marker')
  const next = await watcher.next()
  t.match(next, { type: 'message', text: 'marker' }, 'no leave or join reached the watcher')
})
