import type { Adapter } from '../broker/adapter.js'
import { LocalAdapter } from '../broker/local-adapter.js'
import { FST_CHAT_INVALID_OPTION } from '../errors.js'
import type { FastifyChatOptions } from '../options.js'
import { MemoryStore } from '../stores/memory-store.js'
import { shown } from '../validate.js'

const STORE_METHODS = ['append', 'recent', 'since', 'entry', 'epoch'] as const
const ADAPTER_METHODS = ['start', 'close'] as const
const BROKER_METHODS = ['publish', 'subscribe', 'unsubscribe', 'recent', 'since', 'entry'] as const
const PRESENCE_METHODS = ['join', 'leave', 'rename', 'page', 'count'] as const
const CONTROL_METHODS = ['send', 'pair', 'pairOf'] as const

/** A user-supplied object that must have `methods`; `null` when not given. */
function implementation<T> (name: string, role: string, value: T | undefined, methods: readonly string[]): T | null {
  if (value === undefined) return null
  if (typeof value !== 'object' || value === null) throw new FST_CHAT_INVALID_OPTION(name, `must be a ${role} object, got ${shown(value)}`)
  for (const method of methods) {
    if (typeof (value as Record<string, unknown>)[method] !== 'function') {
      throw new FST_CHAT_INVALID_OPTION(name, `must implement ${role} (missing ${method}())`)
    }
  }
  return value
}

/** The given adapter, checked for its parts' methods, or an in-process one over the given (or a new in-memory) store. */
export function resolveAdapter (opts: FastifyChatOptions, historySize: number): Adapter {
  const store = implementation('store', 'HistoryStore', opts.store, STORE_METHODS)
  const adapter = implementation('adapter', 'Adapter', opts.adapter, ADAPTER_METHODS)
  if (adapter === null) return new LocalAdapter(store ?? new MemoryStore({ size: historySize }), store === null)
  if (store !== null) throw new FST_CHAT_INVALID_OPTION('store', 'is for the in-process adapter: an adapter keeps its own history')
  // A missing broker or presence is checked as `null`, which no implementation is.
  implementation('adapter.broker', 'Broker', adapter.broker ?? null, BROKER_METHODS)
  implementation('adapter.presence', 'Presence', adapter.presence ?? null, PRESENCE_METHODS)
  implementation('adapter.control', 'Control', adapter.control ?? null, CONTROL_METHODS)
  return adapter
}
