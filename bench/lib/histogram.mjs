// Latency histogram with logarithmic buckets (2% wide) from 1 µs to ~100 s:
// constant memory whatever the message rate, and cheap to merge across
// load generator processes (sent as sparse [bucket, count] pairs).
const PER_E = 50 // buckets per factor e: each is exp(1/50) ≈ 2% wide
const BUCKETS = Math.ceil(Math.log(1e8) * PER_E) + 2

export class Histogram {
  constructor () {
    this.counts = new Uint32Array(BUCKETS)
    this.total = 0
    this.max = 0
  }

  /** Records a latency in milliseconds. */
  record (ms) {
    const us = ms * 1000
    const bucket = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(us) * PER_E))
    this.counts[bucket]++
    this.total++
    if (ms > this.max) this.max = ms
  }

  reset () {
    this.counts.fill(0)
    this.total = 0
    this.max = 0
  }

  toJSON () {
    const sparse = []
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] !== 0) sparse.push([i, this.counts[i]])
    return { sparse, total: this.total, max: this.max }
  }

  merge ({ sparse, total, max }) {
    for (const [i, count] of sparse) this.counts[i] += count
    this.total += total
    if (max > this.max) this.max = max
  }

  /** The `q` quantile (0..1) in milliseconds: the upper edge of its bucket, at most the max seen. */
  quantile (q) {
    if (this.total === 0) return NaN
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]
      if (seen >= rank) return Math.min(this.max, Math.exp(i / PER_E) / 1000)
    }
    return this.max
  }
}
