// A TCP proxy on loopback that holds every chunk for `delayMs` in each
// direction before passing it on, in order: Redis as if it were that far
// away. Node's timers fire on whole milliseconds, so a chunk waits at least
// `delayMs` and up to about a millisecond more; the round trip it adds is
// measured and reported by whoever uses it (bench/redis.mjs).
//
//   node bench/lib/delay-proxy.mjs <target port> <delay ms>
//   prints the port it listens on, and exits when stdin closes.
import net from 'node:net'
import { fileURLToPath } from 'node:url'

const HOST = '127.0.0.1'

/** Passes what `from` sends on to `to`, each chunk `delayMs` after it came; ends `to` as late after `from` ends. */
function pipeDelayed (from, to, delayMs) {
  const queue = []
  let timer = null
  let ended = false
  const flush = () => {
    timer = null
    const now = performance.now()
    while (queue.length > 0 && queue[0].due <= now) to.write(queue.shift().chunk)
    if (queue.length > 0) schedule()
    else if (ended) to.end()
  }
  const schedule = () => {
    timer = setTimeout(flush, Math.max(0, queue[0].due - performance.now()))
  }
  from.on('data', (chunk) => {
    queue.push({ due: performance.now() + delayMs, chunk })
    if (timer === null) schedule()
  })
  from.on('end', () => {
    ended = true
    if (timer === null) setTimeout(() => to.end(), delayMs)
  })
}

/** Listens on a free loopback port; resolves with the server once it does. */
export function startDelayProxy ({ targetPort, delayMs }) {
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: HOST, port: targetPort })
    for (const s of [client, upstream]) s.setNoDelay(true)
    pipeDelayed(client, upstream, delayMs)
    pipeDelayed(upstream, client, delayMs)
    const drop = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', () => setTimeout(() => upstream.destroy(), delayMs + 5))
    upstream.on('close', () => setTimeout(() => client.destroy(), delayMs + 5))
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, HOST, () => resolve(server))
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [targetPort, delayMs] = process.argv.slice(2).map(Number)
  if (!Number.isInteger(targetPort) || !(delayMs >= 0)) {
    console.error('usage: node bench/lib/delay-proxy.mjs <target port> <delay ms>')
    process.exit(2)
  }
  const server = await startDelayProxy({ targetPort, delayMs })
  process.stdout.write(`${server.address().port}\n`)
  process.stdin.resume()
  process.stdin.on('end', () => process.exit(0))
  process.stdin.on('close', () => process.exit(0))
}
