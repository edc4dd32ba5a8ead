// redis-server killed and restarted without persistence, mid-run: the rooms'
// history is gone and their epochs change under two live instances.
import t from 'tap'
import { FaultRig } from '../helpers/fault-rig.js'
import { adapterEvent } from '../helpers/redis.js'

t.test('Redis killed and restarted empty: every acknowledged message once, in order, or a reset joined before the gap', async (t) => {
  const rig = await FaultRig.start(t)
  const stats = await rig.run(t, async () => {
    const down = adapterEvent('down', 'subscriber')
    await rig.redis.restart({ kill: true })
    await down
  })
  const reports = rig.check(t, stats)
  // The room's history went with the old Redis, so the epoch changed under every member.
  t.same([...reports].filter(([, r]) => r.resets === 0).map(([name]) => name), [], 'every subscriber got a reset joined')
})
