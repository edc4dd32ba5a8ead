// Progress lines on stderr, stamped with the seconds since the run started;
// stdout carries only the report.

export const runStarted = Date.now()

export function log (...args) {
  console.error(`[${((Date.now() - runStarted) / 1000).toFixed(0).padStart(4)} s]`, ...args)
}
