// One load generator process (bench/loadgen.mjs), driven over IPC: every
// command carries an id and gets exactly one answer, or a timeout.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnNode, stopChild } from './proc.mjs'

const LOADGEN = join(dirname(fileURLToPath(import.meta.url)), '..', 'loadgen.mjs')
let nextId = 1

export class LoadgenProcess {
  #pending = new Map()

  /**
   * Starts it pinned to `cpus` (a taskset list, or null) at nice level
   * `nice`; `script` is another client process speaking the same IPC
   * (bench/storm-clients.mjs).
   */
  constructor ({ cpus, nice, script = LOADGEN }) {
    this.proc = spawnNode([script], { cpus, nice, ipc: true })
    this.proc.on('message', ({ id, result, error }) => {
      const waiter = this.#pending.get(id)
      if (waiter === undefined) return
      this.#pending.delete(id)
      if (error === undefined) waiter.resolve(result)
      else waiter.reject(new Error(`loadgen: ${error}`))
    })
    this.proc.on('exit', () => {
      for (const waiter of this.#pending.values()) waiter.reject(new Error('loadgen exited'))
      this.#pending.clear()
    })
  }

  get pid () {
    return this.proc.pid
  }

  call (cmd, args = {}, timeoutMs = 60_000) {
    return new Promise((resolve, reject) => {
      const id = nextId++
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`loadgen ${cmd}: no answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      })
      this.proc.send({ id, cmd, ...args })
    })
  }

  async stop () {
    if (this.proc.connected) this.proc.send({ cmd: 'exit' })
    await stopChild(this.proc)
  }
}
