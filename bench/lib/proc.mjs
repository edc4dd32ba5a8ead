// Child processes of the benchmark: spawned through `sh -c 'ulimit -n …; exec …'`
// (and `taskset -c <cpus>` when available) so that the pid we get is the
// node process itself, then measured from /proc.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** Whether `taskset` exists and may pin to core 0 here. */
export function tasksetWorks () {
  try {
    return spawnSync('taskset', ['-c', '0', 'true']).status === 0
  } catch {
    return false
  }
}

/** User + system CPU time of a process, in seconds (0 once it is gone). */
export function cpuSeconds (pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return 0
  }
}

/** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), or NaN. */
export function statusKiB (pid, field = 'VmRSS') {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? NaN : Number(m[1])
  } catch {
    return NaN
  }
}

/** The soft "Max open files" limit of a process. */
export function openFilesLimit (pid) {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
    return m === null ? null : m[1]
  } catch {
    return null
  }
}

const children = new Set()

/** Kills every child still running; safe to call more than once. */
export function killAll () {
  for (const child of children) {
    try {
      child.kill('SIGKILL')
    } catch {}
  }
  children.clear()
}

/**
 * Kills every child when the runner exits, is interrupted or hits an
 * unhandled rejection, and gives up after `hardLimitMs` so that a stuck run
 * leaves nothing behind.
 */
export function killChildrenOnExit (hardLimitMs) {
  process.on('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping every benchmark process`)
      killAll()
      process.exit(130)
    })
  }
  process.on('unhandledRejection', (err) => {
    console.error(err)
    killAll()
    process.exit(1)
  })
  const hardLimit = setTimeout(() => {
    console.error(`bench: still running after ${hardLimitMs / 60_000} min, giving up`)
    killAll()
    process.exit(1)
  }, hardLimitMs)
  hardLimit.unref()
}

// Raise the soft fd limit as far as allowed (65536, else the hard limit), then
// become the command: `exec` keeps the pid, so /proc/<pid> is node's.
const LAUNCH = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"'

/**
 * Starts `node <nodeArgs…>` pinned to `cpus` (a taskset list, or null), at
 * nice level `nice`, with
 * stdin/stdout piped, stderr inherited, and an IPC channel when `ipc` is set.
 */
export function spawnNode (nodeArgs, { cpus = null, nice = 0, env = process.env, ipc = false } = {}) {
  const command = [process.execPath, ...nodeArgs]
  const pinned = cpus === null ? command : ['taskset', '-c', cpus, ...command]
  const argv = nice === 0 ? pinned : ['nice', '-n', String(nice), ...pinned]
  const child = spawn('sh', ['-c', LAUNCH, 'sh', ...argv], {
    stdio: ipc ? ['pipe', 'pipe', 'inherit', 'ipc'] : ['pipe', 'pipe', 'inherit'],
    env
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  child.lines = lineQueue(child.stdout)
  return child
}

/** Lines of a stream, awaited one by one with a timeout. */
function lineQueue (stream) {
  const lines = []
  const waiters = []
  let ended = false
  createInterface({ input: stream }).on('line', (line) => {
    const waiter = waiters.shift()
    if (waiter === undefined) lines.push(line)
    else waiter.resolve(line)
  }).on('close', () => {
    ended = true
    for (const waiter of waiters.splice(0)) waiter.reject(new Error('process output ended'))
  })
  return {
    next (timeoutMs = 30_000) {
      if (lines.length > 0) return Promise.resolve(lines.shift())
      if (ended) return Promise.reject(new Error('process output ended'))
      return new Promise((resolve, reject) => {
        const waiter = { resolve, reject }
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1)
          reject(new Error(`no output within ${timeoutMs} ms`))
        }, timeoutMs)
        waiter.resolve = (line) => { clearTimeout(timer); resolve(line) }
        waiter.reject = (err) => { clearTimeout(timer); reject(err) }
        waiters.push(waiter)
      })
    }
  }
}

/** Ends a child: closes its stdin (servers exit on that), then SIGKILL after `graceMs`. */
export async function stopChild (child, graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try {
    child.stdin.end()
  } catch {}
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

/**
 * CPU seconds the whole machine spent busy (user, nice, system, steal; not
 * irq/softirq, which loopback traffic of our own processes shows up in).
 * Minus our own processes' CPU, it is what other processes took.
 */
export function machineBusySeconds () {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
    return (f[0] + f[1] + f[2] + (f[7] ?? 0)) / CLK_TCK
  } catch {
    return NaN
  }
}

/**
 * The kernel's count of connections a full accept queue turned away
 * (TcpExt ListenOverflows, ListenDrops; machine-wide), or null. Each one
 * costs its client a SYN retransmission: a second, then two, then four…
 */
export function listenDrops () {
  try {
    const [names, values] = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:')).map((l) => l.trim().split(/\s+/))
    const at = (name) => Number(values[names.indexOf(name)])
    return { overflows: at('ListenOverflows'), drops: at('ListenDrops') }
  } catch {
    return null
  }
}
