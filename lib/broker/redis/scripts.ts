import type { Redis } from 'ioredis'
import { CONTROL, CONTROL_SINCE } from './control-scripts.js'
import { BEFORE, PUBLISH, RECENT, SINCE } from './history-scripts.js'
import type { Script } from './lua.js'
import { MARK_READ, READ_POSITIONS, SHARE_READ } from './read-scripts.js'
import { JOIN, LEAVE, MEMBERS, PAGE, REFRESH, RENAME, RESTORE, SWEEP } from './presence-scripts.js'

// Every script of the adapter: each connection defines them all once.
const SCRIPTS: ReadonlyArray<Script<string, string, unknown>> = [PUBLISH, RECENT, SINCE, BEFORE, JOIN, LEAVE, RENAME, REFRESH, SWEEP, RESTORE, MEMBERS, PAGE, CONTROL, CONTROL_SINCE,
  MARK_READ, SHARE_READ, READ_POSITIONS]

/** Defines every script as a command of `redis` (and of its pipelines). */
export function defineScripts (redis: Pick<Redis, 'defineCommand'>): void {
  for (const { command, keys, lua } of SCRIPTS) redis.defineCommand(command, { numberOfKeys: keys.length, lua })
}
