// redis-server killed (SIGKILL) and restarted with an append-only file,
// mid-run: the rooms' history and epochs survive, the connections do not.
import t from 'tap'
import { FaultRig } from '../helpers/fault-rig.js'
import { adapterEvent } from '../helpers/redis.js'

t.test('Redis killed and restarted with AOF: every acknowledged message once, in order, or a reset joined before the gap', async (t) => {
  const rig = await FaultRig.start(t, { redis: { aof: true } })
  const stats = await rig.run(t, async () => {
    const down = adapterEvent('down', 'subscriber')
    await rig.redis.restart({ kill: true })
    await down
  })
  const reports = rig.check(t, stats)
  t.comment(`resets: ${[...reports.values()].reduce((n, r) => n + r.resets, 0)} across ${reports.size} subscribers`)
})
