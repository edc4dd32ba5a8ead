// The typed client's read positions over real sockets: two tabs of one user.
import t from 'tap'
import WebSocket from 'ws'
import { connect } from '../lib/client.js'
import type { ChatConnection, ConnectOptions } from '../lib/client.js'
import { listen } from './helpers/chat.js'
import { waitFor } from './helpers/client-events.js'

const fast: ConnectOptions = { WebSocket, backoff: { initialMs: 5, maxMs: 20 } }

function identify (request: { query: unknown }): { id: string, name: string } {
  const { user } = request.query as { user: string }
  return { id: user, name: user }
}

t.test('read() clears the badge in the other tab; messages from others raise it, across a reload', async (t) => {
  const { url } = await listen(t, { identify, rateLimit: false })
  const open = (user: string): ChatConnection => {
    const conn = connect(`${url}/chat?user=${user}&room=lobby`, fast)
    t.teardown(() => conn.close())
    return conn
  }
  const bob = open('bob')
  await waitFor(bob, 'joined')
  for (let i = 0; i < 3; i++) {
    const echoed = waitFor(bob, 'message')
    bob.send(`m${i}`)
    await echoed
  }
  const tab1 = open('alice')
  const tab2 = open('alice')
  t.match(await waitFor(tab1, 'unread'), { room: 'lobby', read: 0, unread: 3 })
  t.match(await waitFor(tab2, 'unread'), { room: 'lobby', read: 0, unread: 3 })

  const cleared = waitFor(tab2, 'unread', (event) => event.read === 3)
  tab1.read('lobby')
  t.strictSame(tab1.unread('lobby'), { room: 'lobby', read: 3, unread: 0 }, 'at once in the tab that read')
  t.strictSame(await cleared, { room: 'lobby', read: 3, unread: 0 }, 'and the other tab hears it')

  const raised = waitFor(tab2, 'unread', (event) => event.unread === 1)
  bob.send('new')
  t.strictSame(await raised, { room: 'lobby', read: 3, unread: 1 })
  const mine = waitFor(tab2, 'message')
  tab1.send('my own')
  await mine
  t.equal(tab2.unread('lobby')?.unread, 1, 'the user\'s own message is not unread')

  const reloaded = open('alice')
  t.match(await waitFor(reloaded, 'unread'), { room: 'lobby', read: 3, unread: 1 }, 'the server kept it')
  t.equal(reloaded.unread('elsewhere'), undefined)
  t.throws(() => reloaded.read('lobby', -1), TypeError)
  t.throws(() => reloaded.read('no room!'), TypeError)
})
