// Socket closes as the load generators count them: closes[group][code] = n,
// group being sub, pub or paused (a slow subscriber), code 1006 a connection
// that ended without a close frame.

export function closeCount (closes) {
  let n = 0
  for (const codes of Object.values(closes)) for (const v of Object.values(codes)) n += v
  return n
}

/** Closes in `after` that were not in `before`, by group and code. */
export function closesSince (after, before) {
  const out = {}
  for (const [group, codes] of Object.entries(after)) {
    for (const [code, n] of Object.entries(codes)) {
      const d = n - (before[group]?.[code] ?? 0)
      if (d > 0) (out[group] ??= {})[code] = d
    }
  }
  return out
}

export function describeCloses (closes) {
  const parts = []
  for (const [group, codes] of Object.entries(closes)) {
    const name = { sub: 'subscriber', pub: 'publisher', paused: 'slow subscriber' }[group] ?? group
    for (const [code, n] of Object.entries(codes)) parts.push(`${n} ${name}${n > 1 ? 's' : ''} closed ${code === '1006' ? 'without a close frame' : `with ${code}`}`)
  }
  return parts.join(', ')
}
