// Stand-alone scenarios: scripts next to this harness that each print their
// own Markdown table (bench/store.mjs, bench/redis.mjs). They run last, with
// `--quick` passed on, and their output is appended to the report as is.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { log } from '../lib/log.mjs'

const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')
const ROOT = join(BENCH_DIR, '..')

const SCRIPTS = [
  { id: 'store', script: 'store.mjs', title: 'History store (bench/store.mjs)' },
  { id: 'redis', script: 'redis.mjs', title: 'Across instances through Redis (bench/redis.mjs)' }
]

/** Runs every script of `ids` that exists; `seconds` is null when none did. */
export async function run (bench, ids) {
  const outputs = []
  let seconds = null
  for (const { id, script, title } of SCRIPTS) {
    if (!ids.includes(id)) continue
    const path = join(BENCH_DIR, script)
    if (!existsSync(path)) continue
    log(`${script}: node bench/${script}${bench.quick ? ' --quick' : ''}`)
    const started = Date.now()
    outputs.push({ title, output: await runScript(bench, path, script) })
    seconds = (seconds ?? 0) + (Date.now() - started) / 1000
  }
  return { outputs, seconds }
}

/** Its stdout, with a note appended when it failed or ran out of time; never rejects. */
function runScript (bench, path, name) {
  const { quick, cfg } = bench
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path, ...(quick ? ['--quick'] : [])], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    child.stdout.on('data', (chunk) => { text += chunk })
    const timer = setTimeout(() => child.kill('SIGKILL'), cfg.storeTimeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve(text.trim())
      else resolve(`${text.trim()}\n\n_bench/${name} ${signal === null ? `exited with ${code}` : `was stopped (${signal}) after ${cfg.storeTimeoutMs / 1000} s`}._`.trim())
    })
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve(`_bench/${name} could not run: ${err.message}_`)
    })
  })
}

/** One report section per script that ran. */
export function sections ({ outputs }) {
  return outputs.map(({ title, output }) => [`## ${title}`, '', output])
}
