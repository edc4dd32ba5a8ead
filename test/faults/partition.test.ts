// Instance B cut off from Redis for 3 s through a TCP proxy, mid-run, while
// instance A keeps publishing: B's members miss what A sent meanwhile, and
// clients that join B during the cut are let in around when it heals.
import t from 'tap'
import { FaultRig } from '../helpers/fault-rig.js'

t.test('one instance cut off from Redis for 3 s: every acknowledged message once, in order, or a reset joined before the gap', async (t) => {
  const rig = await FaultRig.start(t, { proxyB: true })
  const proxy = rig.proxy
  if (proxy === null) throw new Error('no proxy')
  let late: Promise<void> = Promise.resolve()
  const stats = await rig.run(t, async () => {
    const healed = proxy.cut(3000)
    // Joined while B cannot reach Redis: refused, then retried until B lets them in.
    late = rig.addSubscribers(1, 5)
    await healed
  })
  await t.resolves(late, 'the clients that joined during the cut got in')
  rig.check(t, stats)
  t.ok(proxy.refused > 0, 'instance B tried to reconnect during the cut')
  t.ok((rig.publishers[1]?.unavailable ?? 0) > 0, 'sends on B were answered "unavailable" during the cut')
})
