// The Markdown report: printed to stdout as it is assembled, then written to
// a file. Each scenario writes its own section; the parts here frame them.
import { writeFileSync } from 'node:fs'
import { machineSection } from './machine.mjs'
import { CALM, DISTURBED, SAMPLED } from './settings.mjs'

export class Report {
  #lines = []

  emit (text = '') {
    this.#lines.push(text)
    console.log(text)
  }

  /** A section after a blank line; none when `texts` is null. */
  section (texts) {
    if (texts === null) return
    this.emit()
    for (const text of texts) this.emit(text)
  }

  write (file) {
    writeFileSync(file, this.#lines.join('\n') + '\n')
  }
}

/** Title, machine, how long the run took and how it dealt with other load, and what every table measures. */
export function head (bench, { totalSeconds, standaloneSeconds }) {
  const { cfg, calm, placement: { nice } } = bench
  return [
    '# fastify-chat benchmark',
    '',
    machineSection(bench),
    `- Run time: ${totalSeconds.toFixed(0)} s${standaloneSeconds === null ? '' : ` (of which bench/store.mjs and bench/redis.mjs ${standaloneSeconds.toFixed(0)} s)`}`,
    `- Other load: before each measurement the run waits (up to ${Math.round(calm.budgetMs / 1000)} s in all; it waited ` +
      `${Math.round(calm.waitedMs / 1000)} s) for other processes to use under ${CALM}% of a core, and repeats a failed or measured ` +
      `run (up to ${cfg.retries}×) when they took over ${DISTURBED}%; "others" below is the CPU they took during the reported run` +
      (nice === 0 ? '.' : `. Servers and load generators ran at nice ${nice}.`),
    '',
    'Every server runs in a fresh process per scenario. Clients are raw TCP WebSocket clients in a separate load ' +
      `generator process, over loopback; ${SAMPLED} subscribers per run decode each payload for latency (now − the ` +
      'scheduled send time it carries), the others only count frames. Messages are 64-byte texts sent open-loop ' +
      '(catch-up timer, so a late sender bursts rather than slows down). Ratios are to the naive loop.'
  ]
}

/** How each server was configured; `floor` when the CPU table has the floor column. */
export function settings ({ hasSqlite, floor }) {
  return [
    '## Settings',
    '',
    '- fastify-chat runs with `rateLimit: false`: the publishers here send up to thousands of messages per second ' +
      'on one socket, far past the default per-connection limit (10 msg/s, burst 20). Also `heartbeatInterval: 0`, ' +
      '`maxConnections: 100000`, `defaultRoom: \'bench\'`, `historySize: 100`, everything else default ' +
      '(`maxBufferedBytes` 1 MiB, `echo` on).' + (hasSqlite ? ' The SQLite column uses `sqliteStore` on a temporary file.' : ''),
    '- The naive loop is @fastify/websocket with a Set of sockets and `for (const c of clients) c.send(msg)` per message; ' +
      'Socket.IO is `io.emit(\'m\', p)` per message, WebSocket transport only. Both send to the sender as well, as fastify-chat does.',
    ...(floor
      ? ['- The floor (CPU scenario only) writes each message, in an envelope of fastify-chat\'s shape and size, framed once, ' +
          'to the stream under every socket with no check at all: a measure of the write alone, not a server to deploy.']
      : []),
    ...(hasSqlite ? [] : ['- `sqliteStore` is not exported by dist/index.js yet, so there is no SQLite column.'])
  ]
}

/** What failed, one line each; none when nothing did. */
export function errors (failures) {
  return failures.length === 0 ? null : ['## Errors', '', ...failures.map((f) => `- ${f}`)]
}
