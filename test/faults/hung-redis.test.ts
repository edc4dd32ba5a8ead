// A hung Redis (DEBUG SLEEP 4), mid-run: connections stay open, nothing answers.
import t from 'tap'
import { FaultRig } from '../helpers/fault-rig.js'
import { adminClient } from '../helpers/redis.js'

t.test('Redis hung for 4 s: sends get "unavailable", then every acknowledged message once, in order, or a reset joined before the gap', async (t) => {
  const rig = await FaultRig.start(t, { redis: { debug: true } })
  const admin = adminClient(t, rig.redis)
  // Answered when Redis wakes up.
  const stats = await rig.run(t, async () => await admin.call('DEBUG', 'SLEEP', '4'))
  rig.check(t, stats)
  // A command timeout answers sends while Redis is hung, instead of letting them wait for it.
  t.ok(stats.unavailable > 0, `sends during the hang were answered "unavailable" (${stats.unavailable})`)
})
