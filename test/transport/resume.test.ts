import t from 'tap'
import WebSocket from 'ws'
import { connect } from '../../lib/client.js'
import { ResumeSigner } from '../../lib/transport/resume.js'
import { randomId, randomString } from '../../lib/random.js'
import { Client, join, listen } from '../helpers/chat.js'

t.test('resume tokens verify only with their secret', async (t) => {
  const s1 = new ResumeSigner('s1')
  const token = s1.token('abc.def')
  t.equal(s1.id(token), 'abc.def', 'ids may contain dots')
  t.equal(new ResumeSigner('s2').id(token), null)
  t.equal(s1.id(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')), null, 'a changed mac fails')
  for (const bad of [undefined, 5, '', 'nodot', '.mac', 'x'.repeat(300)]) t.equal(s1.id(bad), null, String(bad))
})

t.test('the token\'s mac is HMAC-SHA256, base64url, cut to 22 characters', async (t) => {
  // RFC 4231, test case 2: HMAC-SHA256 of this text with the key "Jefe" is 5bdcc146bf60754e…
  const signer = new ResumeSigner('Jefe')
  t.equal(signer.token('what do ya want for nothing?'), 'what do ya want for nothing?.W9zBRr9gdU5qBCQmCJV1x1')
  t.equal(signer.id('what do ya want for nothing?.W9zBRr9gdU5qBCQmCJV1x1'), 'what do ya want for nothing?')
})

t.test('random ids are distinct and base64url; random strings have the asked length', async (t) => {
  const seen = new Set<string>()
  for (let i = 0; i < 2000; i++) seen.add(randomId())
  t.equal(seen.size, 2000)
  t.match(randomId(), /^[A-Za-z0-9_-]{16}$/)
  t.match(randomString(2, 'hex'), /^[0-9a-f]{4}$/)
  const long = randomString(5000, 'hex')
  t.match(long, /^[0-9a-f]{10000}$/, 'more than the pool holds at once')
  t.not(long.slice(0, 16), randomString(5000, 'hex').slice(0, 16))
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
