// What every benchmark server shares: print the port once listening, then
// answer the runner's commands on stdin, one per line ("gc", "stats"), and
// exit when stdin closes so no server outlives a runner that died.
import { createInterface } from 'node:readline'

/** Loopback, on LISTEN_PORT (default any free port) with LISTEN_BACKLOG (default Node's 511). */
export function listenOptions () {
  const backlog = Number(process.env.LISTEN_BACKLOG ?? 0)
  return { host: '127.0.0.1', port: Number(process.env.LISTEN_PORT ?? 0), ...(backlog > 0 ? { backlog } : {}) }
}

export function serve (port, { stats = () => ({}), cleanup = () => {} } = {}) {
  process.stdout.write(`${port}\n`)
  const lines = createInterface({ input: process.stdin })
  lines.on('line', (line) => {
    const command = line.trim()
    if (command === 'gc') {
      // Started with --expose-gc: collect twice so what is left is what is held.
      globalThis.gc?.()
      globalThis.gc?.()
      // V8's heap after the collection: what JavaScript objects hold, without
      // the allocator and heap-sizing slack that moves RSS.
      const { heapUsed, external } = process.memoryUsage()
      process.stdout.write(`gc ${globalThis.gc === undefined ? 'unavailable' : 'done'} ${heapUsed} ${external}\n`)
    } else if (command === 'stats') {
      process.stdout.write(`stats ${JSON.stringify(stats())}\n`)
    }
  })
  const exit = () => {
    try {
      cleanup()
    } finally {
      process.exit(0)
    }
  }
  lines.on('close', exit)
  process.on('SIGTERM', exit)
  process.on('SIGINT', exit)
}
