// The machine may be shared. Before each measurement the run waits for other
// processes to go quiet, but only within one budget for the whole run, so a
// busy neighbour slows the run down by a bounded amount instead of stalling it.
import { setTimeout as sleep } from 'node:timers/promises'
import { fmtPct } from './format.mjs'
import { log } from './log.mjs'
import { CALM } from './settings.mjs'

export class CalmBudget {
  constructor (budgetMs) {
    this.budgetMs = budgetMs
    this.leftMs = budgetMs
    this.waitedMs = 0
  }

  /** Waits, within what is left of the budget, until other processes use under CALM% of a core. */
  async wait (rig) {
    const started = Date.now()
    let logged = false
    while (this.leftMs - (Date.now() - started) > 0) {
      const a = rig.snap()
      await sleep(250)
      const foreign = rig.usage(a, rig.snap()).foreignCpu
      if (foreign < CALM) break
      if (!logged) {
        log(`  other processes use ${fmtPct(foreign)} of a core: waiting for them (budget left ${Math.round(this.leftMs / 1000)} s)`)
        logged = true
      }
    }
    const waited = Date.now() - started
    this.leftMs -= waited
    this.waitedMs += waited
  }
}
