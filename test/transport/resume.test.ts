import { createHmac } from 'node:crypto'
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

t.test('the token\'s mac is HMAC-SHA256, as createHmac computes it, for any secret and id', async (t) => {
  const secrets = ['s', 'k'.repeat(64), 'long secret '.repeat(10), 'ünïcödé 🔑', randomString(32, 'base64url')]
  const ids = ['', 'a', randomId(), 'é'.repeat(40), 'x'.repeat(1024), 'y'.repeat(1025), '𝄞'.repeat(300)]
  for (const secret of secrets) {
    const signer = new ResumeSigner(secret)
    for (const id of ids) {
      const mac = createHmac('sha256', secret).update(id).digest('base64url').slice(0, 22)
      t.equal(signer.token(id), `${id}.${mac}`, `secret of ${secret.length}, id of ${Buffer.byteLength(id)} bytes`)
    }
    // Signing a long id must not leave its bytes behind for a shorter one.
    t.equal(signer.token('ab'), `ab.${createHmac('sha256', secret).update('ab').digest('base64url').slice(0, 22)}`)
  }
})

t.test('random ids and names come from a pool that never hands out the same bytes twice', async (t) => {
  const seen = new Set<string>()
  // 2000 ids of 12 bytes span several refills of the 4 KiB pool.
  for (let i = 0; i < 2000; i++) seen.add(randomId())
  t.equal(seen.size, 2000)
  t.match(randomId(), /^[A-Za-z0-9_-]{16}$/)
  t.match(randomString(2, 'hex'), /^[0-9a-f]{4}$/)
  t.throws(() => randomString(257, 'hex'), RangeError, 'more than the pool hands out at once')
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
