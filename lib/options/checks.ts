import { FST_CHAT_INVALID_OPTION } from '../errors.js'
import type { ResolvedOptions } from '../options.js'
import { SIGNAL_NAME_PATTERN } from '../protocol/wire.js'
import type { RateLimit } from '../transport/rate-limit.js'
import { integerOption as integer, refuseUnknownKeys, shown } from '../validate.js'

// Timers take at most a signed 32-bit number of milliseconds.
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A hook: `null` when not given. */
export function optionalFunction<T> (name: string, value: T | undefined): NonNullable<T> | null {
  if (value === undefined) return null
  if (typeof value !== 'function') throw new FST_CHAT_INVALID_OPTION(name, `must be a function, got ${shown(value)}`)
  return value
}

/** A token bucket, or `null` for `false`. */
export function resolveRateLimit (value: unknown, name = 'rateLimit'): Readonly<RateLimit> | null {
  if (value === false) return null
  if (typeof value !== 'object' || value === null) {
    throw new FST_CHAT_INVALID_OPTION(name, `must be false or { messages, intervalMs, burst }, got ${shown(value)}`)
  }
  refuseUnknownKeys(value, new Set(['messages', 'intervalMs', 'burst']), name)
  const limit = value as Record<string, unknown>
  return Object.freeze({
    messages: integer(`${name}.messages`, limit.messages, 1, 1_000_000),
    intervalMs: integer(`${name}.intervalMs`, limit.intervalMs, 1, MAX_TIMER_MS),
    burst: integer(`${name}.burst`, limit.burst, 1, 1_000_000)
  })
}

// More names than a client could usefully tell apart: a list this long is a mistake.
const MAX_SIGNAL_NAMES = 64

/** The names of the signals clients may send. */
export function resolveSignals (value: unknown): ReadonlySet<string> {
  if (!Array.isArray(value) || value.length > MAX_SIGNAL_NAMES) {
    throw new FST_CHAT_INVALID_OPTION('signals', `must be an array of at most ${MAX_SIGNAL_NAMES} signal names, got ${shown(value)}`)
  }
  for (const name of value) {
    if (typeof name !== 'string' || !SIGNAL_NAME_PATTERN.test(name)) {
      throw new FST_CHAT_INVALID_OPTION('signals', `has ${shown(name)}, which is not a signal name (1 to 32 letters, digits, _ . : or -)`)
    }
  }
  return new Set(value as string[])
}

/** Normalized origins, the app's function, or `null` for the same-host rule. */
export function resolveOrigins (value: unknown): ResolvedOptions['allowedOrigins'] {
  if (value === undefined) return null
  if (typeof value === 'function') return value as ResolvedOptions['allowedOrigins']
  if (!Array.isArray(value)) throw new FST_CHAT_INVALID_OPTION('allowedOrigins', 'must be an array of origins or a function')
  const origins = new Set<string>()
  for (const entry of value) {
    let origin: string | undefined
    try {
      origin = typeof entry === 'string' ? new URL(entry).origin : undefined
    } catch {}
    if (origin === undefined || origin === 'null') {
      throw new FST_CHAT_INVALID_OPTION('allowedOrigins', `has ${JSON.stringify(entry)}, which is not an origin like "https://example.com"`)
    }
    origins.add(origin)
  }
  return origins
}

// Shorter keys are guessable enough to forge another user's resume token.
const MIN_SECRET_LENGTH = 32

/** The key that signs resume tokens, or `null` to take the adapter's or a random one. */
export function resolveSecret (value: unknown): string | null {
  if (value === undefined) return null
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) {
    throw new FST_CHAT_INVALID_OPTION('secret', `must be a string of at least ${MIN_SECRET_LENGTH} characters, got ${typeof value === 'string' ? `${value.length} characters` : shown(value)}`)
  }
  return value
}
