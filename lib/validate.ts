import { FST_CHAT_INVALID_OPTION } from './errors.js'

/** A value as an error message shows it: strings quoted, so `"100"` and `100` read apart. */
export function shown (value: unknown): string {
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'bigint') return `${value}n`
  try {
    const json = JSON.stringify(value)
    if (json !== undefined) return json.length > 60 ? `${json.slice(0, 57)}...` : json
  } catch {}
  return String(value)
}

/** `value` as an integer option from `min` to `max`, or a throw naming `name`. */
export function integerOption (name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new FST_CHAT_INVALID_OPTION(name, `must be an integer from ${min} to ${max}, got ${shown(value)}`)
  }
  return value
}

/** Levenshtein distance, for suggesting the option a typo meant. */
function distance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost)
    }
    previous = row
  }
  return previous[b.length]
}

/** The known key closest to `key`, when one is close enough to be a typo of it. */
export function closest (key: string, known: Iterable<string>): string | null {
  let best: string | null = null
  let bestDistance = Infinity
  for (const candidate of known) {
    const d = distance(key, candidate)
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(key.length / 4)) ? best : null
}

/** Throws for the first key of `opts` that is not in `known`, naming the one it is closest to; `parent` names a nested object. */
export function refuseUnknownKeys (opts: object, known: ReadonlySet<string>, parent?: string): void {
  for (const key of Object.keys(opts)) {
    if (known.has(key)) continue
    const near = closest(key, known)
    const at = parent === undefined ? '' : `${parent}.`
    throw new FST_CHAT_INVALID_OPTION(`${at}${key}`, `is not a known option${near === null ? '' : ` (did you mean "${at}${near}"?)`}`)
  }
}
