// The report's first lines: the machine, the versions measured, where the
// processes ran and how the run was started.
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runStarted } from './log.mjs'
import { tasksetWorks } from './proc.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

function versionOf (pkg) {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version
  } catch {
    return '?'
  }
}

export function machineSection (bench) {
  const { cores, pinned, placement: { serverCpus, loadgenCpus, workers }, machine, quick } = bench
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? '?'
  const own = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version
  return [
    `- Machine: ${cpu}, ${cores} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}`,
    `- Node ${process.version}; fastify-chat ${own}, fastify ${versionOf('fastify')}, @fastify/websocket ${versionOf('@fastify/websocket')}, ws ${versionOf('ws')}, socket.io ${versionOf('socket.io')} (engine.io ${versionOf('engine.io')})`,
    pinned
      ? `- Pinning: yes (taskset): each server on core ${serverCpus}, the load generator (${workers} process${workers > 1 ? 'es' : ''}) on core${loadgenCpus.includes('-') ? 's' : ''} ${loadgenCpus}`
      : `- Pinning: no (taskset ${tasksetWorks() ? 'works but there is only one core' : 'not available'}); server and load generator share the cores`,
    `- Open-file limit: server ${machine.serverFdLimit ?? '?'}, load generator ${machine.loadgenFdLimit ?? '?'}`,
    `- Mode: ${quick ? 'quick (`npm run bench -- --quick`)' : 'full (`npm run bench`)'}, ${new Date(runStarted).toISOString()}`
  ].join('\n')
}
