// Numbers and Markdown tables as the report prints them. Every formatter
// prints '–' for a figure that could not be measured (NaN, undefined).

export function fmtCount (n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–'
}

export function fmtRate (n) {
  if (!Number.isFinite(n)) return '–'
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 1 : 2)}M/s`
  if (n >= 1e3) return `${Math.round(n / 1e3)}k/s`
  return `${Math.round(n)}/s`
}

export function fmtNum (n) {
  return fmtRate(n).replace('/s', '')
}

export function fmtMs (n) {
  if (!Number.isFinite(n)) return '–'
  return n >= 100 ? `${Math.round(n)} ms` : n >= 10 ? `${n.toFixed(1)} ms` : `${n.toFixed(2)} ms`
}

export function fmtUs (n) {
  return Number.isFinite(n) ? `${n.toFixed(2)} µs` : '–'
}

export function fmtPct (n) {
  return Number.isFinite(n) ? `${Math.round(n)}%` : '–'
}

export function fmtKiB (kib) {
  return Number.isFinite(kib) ? `${kib.toFixed(1)} KiB` : '–'
}

export function fmtMiB (kib) {
  return Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MiB` : '–'
}

export function fmtRatio (x, base) {
  if (!Number.isFinite(x) || !Number.isFinite(base) || base === 0) return '–'
  const r = x / base
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`
}

export function table (header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n')
}

/**
 * Rows of one metric per line, a column per server, then the ratio of each
 * non-naive server to the naive loop. `metrics` are [label, value(result), format, ratio = true].
 */
export function sideBySide (first, results, servers, metrics) {
  const others = servers.filter((s) => s.id !== 'naive')
  const hasNaive = servers.some((s) => s.id === 'naive')
  const header = [first, ...servers.map((s) => s.label), ...(hasNaive ? others.map((s) => `${s.label} ÷ naive`) : [])]
  const rows = metrics.map(([label, value, format, ratio = true]) => {
    const v = (s) => (results[s.id] === undefined ? NaN : value(results[s.id]))
    return [
      label,
      ...servers.map((s) => (results[s.id] === undefined ? 'failed' : format(v(s), results[s.id]))),
      ...(hasNaive ? others.map((s) => (ratio ? fmtRatio(v(s), v({ id: 'naive' })) : '')) : [])
    ]
  })
  return table(header, rows)
}

/** A sideBySide row with the first figure of every round, when there were several. */
export function roundsRow (rounds, format) {
  return rounds > 1 ? [['Each round', (r) => r.rounds, format, false]] : []
}

export function roundsNote (rounds) {
  return rounds > 1 ? ` Each figure is the median of ${rounds} runs per server, the servers taking turns.` : ''
}

/** A note on runs that lost messages, closed sockets or saw errors. */
export function problems (byServer, servers) {
  const notes = []
  for (const s of servers) {
    const r = byServer[s.id]
    if (r?.reasons?.length > 0) notes.push(`${s.label}: ${r.reasons.join('; ')}`)
    if (r?.failures !== undefined && Object.keys(r.failures).length > 0) notes.push(`${s.label}: connect failures ${JSON.stringify(r.failures)}`)
  }
  return notes.length === 0 ? '' : ` Problems: ${notes.join('. ')}.`
}
