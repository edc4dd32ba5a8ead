import { once } from 'node:events'
import t from 'tap'
import { closeSocket } from '../../lib/transport/close.js'
import { within, wsPair } from '../helpers/chat.js'

/** Timers keeping the process alive now. */
function activeTimers (): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length
}

t.test('closes with the handshake: the peer gets the code and reason, and answers', async (t) => {
  const { server, client } = await wsPair(t)
  const peerSaw = once(client, 'close')
  const serverSaw = once(server, 'close')
  const timers = activeTimers()
  // A timeout far beyond the wait: only the peer's answer can settle it in time.
  await within(closeSocket(server, 4001, 'bye now', 60_000), 3000, 'the close')
  t.equal(activeTimers(), timers, 'and the termination timer is gone: it would hold the process for a minute')
  const [code, reason] = await peerSaw as [number, Buffer]
  t.strictSame([code, reason.toString()], [4001, 'bye now'])
  t.equal((await serverSaw)[0], 4001, 'the peer echoed the close frame: a clean close, not a termination')
  t.equal(server.readyState, server.CLOSED, 'closed by the time it resolves')
})

t.test('a peer that does not answer is terminated after the timeout', async (t) => {
  const { server, client } = await wsPair(t)
  // A peer that stopped reading never sees the close frame, so never answers it.
  client.pause()
  const serverSaw = once(server, 'close')
  const started = performance.now()
  await within(closeSocket(server, 4001, 'bye now', 100), 3000, 'the termination')
  t.ok(performance.now() - started >= 99, 'not before the timeout')
  t.equal((await serverSaw)[0], 1006, 'no close frame came back: terminated')
  t.equal(server.readyState, server.CLOSED)
})

t.test('an already closed socket resolves at once', async (t) => {
  const { server } = await wsPair(t)
  server.terminate()
  await once(server, 'close')
  await within(closeSocket(server, 4001, 'again', 60_000), 1000, 'closing a closed socket')
  t.pass('resolved without waiting for a close that will not come')
})
