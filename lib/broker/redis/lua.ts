import type { ChainableCommander, Cluster, Redis } from 'ioredis'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'

/**
 * A Lua script, with the names of its KEYS and ARGV in the order Redis hands
 * them over. The order is written down once: the script's first lines bind
 * each name to its slot (`local epochKey = KEYS[1]`), and call sites pass
 * values by name through {@link runScript} or {@link queueScript}.
 * `R` is what the script returns.
 */
export interface Script<K extends string, A extends string, R> {
  /** The command ioredis defines it as (EVALSHA, with EVAL when Redis lost its script cache). */
  readonly command: string
  readonly keys: readonly K[]
  readonly args: readonly A[]
  readonly lua: string
  /** Never set: carries the result type. */
  readonly result?: R
}

export function script<R> () {
  return <const K extends string, const A extends string> (command: string, keys: readonly K[], args: readonly A[], body: string): Script<K, A, R> => {
    const bind = [
      ...keys.map((name, i) => `local ${name} = KEYS[${i + 1}]`),
      ...args.map((name, i) => `local ${name} = ARGV[${i + 1}]`)
    ]
    return Object.freeze({ command, keys, args, lua: `${bind.join('\n')}\n${body}` })
  }
}

type Values<N extends string> = Readonly<Record<N, string | number>>

function flatten<K extends string, A extends string> (script: Script<K, A, unknown>, keys: Values<K>, args: Values<A>): Array<string | number> {
  return [...script.keys.map((name) => keys[name]), ...script.args.map((name) => args[name])]
}

type Commands = Record<string, (...args: Array<string | number>) => unknown>

// Clients with no `commandTimeout` of their own (one the user handed in,
// whose options are theirs): how long a script on them may take.
const scriptTimeouts = new WeakMap<object, number>()

/** Bounds every script run on `redis` to `ms`, for a client whose own commands have no timeout. */
export function boundScripts (redis: object, ms: number): void {
  scriptTimeouts.set(redis, ms)
}

/** Runs `script` on a connection where {@link defineScripts} ran; a failure or timeout is `FST_CHAT_ADAPTER_UNAVAILABLE`. */
export async function runScript<K extends string, A extends string, R> (redis: Redis | Cluster, script: Script<K, A, R>, keys: Values<K>, args: Values<A>): Promise<R> {
  const work = (redis as unknown as Commands)[script.command](...flatten(script, keys, args)) as Promise<R>
  return await unavailableOnError(work, scriptTimeouts.get(redis))
}

/**
 * `work`, with any failure of the connection (ioredis's own errors) as
 * `FST_CHAT_ADAPTER_UNAVAILABLE`, and so too no answer within `timeoutMs`
 * when given. Redis may still run a command given up on.
 */
export async function unavailableOnError<T> (work: Promise<T>, timeoutMs?: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    if (timeoutMs === undefined) return await work
    return await Promise.race([work, new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    })])
  } catch (err) {
    if (err instanceof FST_CHAT_ADAPTER_UNAVAILABLE) throw err
    throw new FST_CHAT_ADAPTER_UNAVAILABLE(`Redis: ${(err as Error)?.message ?? String(err)}`, { cause: err })
  } finally {
    clearTimeout(timer)
  }
}

/** Adds `script` to a pipeline of a connection where {@link defineScripts} ran. */
export function queueScript<K extends string, A extends string> (pipeline: ChainableCommander, script: Script<K, A, unknown>, keys: Values<K>, args: Values<A>): void {
  (pipeline as unknown as Commands)[script.command](...flatten(script, keys, args))
}
