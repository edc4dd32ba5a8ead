// CLIENT PAUSE for 2 s, mid-run: Redis holds every command, then answers them all.
import t from 'tap'
import { FaultRig } from '../helpers/fault-rig.js'
import { adminClient } from '../helpers/redis.js'

t.test('CLIENT PAUSE 2 s: every acknowledged message once, in order, or a reset joined before the gap', async (t) => {
  const rig = await FaultRig.start(t)
  const admin = adminClient(t, rig.redis)
  const stats = await rig.run(t, async () => {
    await admin.call('CLIENT', 'PAUSE', '2000')
    // Paused like everyone else: it answers once the pause is over.
    await admin.ping()
  })
  rig.check(t, stats)
  t.ok(stats.faultMs >= 1900, `the pause lasted (${stats.faultMs} ms)`)
})
