import type { ChatMessage as Stored, JoinedFrame } from '../../lib/protocol/wire.js'

// Live frames carry their own `type`; what the log checks is the same either way.
type ChatMessage = Omit<Stored, 'type'>

/** What one subscriber received in the room, in arrival order. */
export type LogEntry =
  | { kind: 'joined', frame: JoinedFrame }
  | { kind: 'message', message: ChatMessage }

/** A message a publisher saw acknowledged: its echo (or the stored copy of a retry) came back. */
export interface Ack {
  cid: string
  offset: number
  /** The epoch of the publisher's room view when the echo arrived. */
  epoch: string
}

/** A stretch of the log under one `joined`: live messages must follow its offset one by one. */
interface Segment {
  epoch: string
  start: number
  end: number
  reset: boolean
  /** Offsets of the cids this segment delivered (history and live). */
  seen: Map<string, number>
}

/** What a subscriber's log shows, counted. */
export interface LogReport {
  /** Live messages received. */
  live: number
  /** `joined` frames after the first with `recovered: false`: the server said "you may have missed something". */
  resets: number
  /** Live messages delivered twice (same offset), or again after the `joined` history that held them. */
  duplicates: number
  /** Cids delivered at two offsets: the message was stored twice (`cid@first/second`). */
  storedTwice: string[]
  /** Live messages at or below an offset already delivered in the same segment, seen for the first time (an unannounced epoch change looks so). */
  outOfOrder: number
  /** Offsets skipped between two live messages (or a `joined` and a live message) of one segment. */
  skipped: number
  /** Acknowledged messages never received and not covered by a reset: lost without a word. */
  lost: string[]
  /** Acknowledged messages never received, but announced by a reset `joined` after the gap. */
  excused: number
  /** Protocol breaches in `joined` frames (a recovered `joined` under another epoch, history above the offset). */
  badJoined: number
  /** Where the first breach of order happened, to tell a reader where to look. */
  first?: string
}

function newSegment (frame: JoinedFrame, reset: boolean): Segment {
  return { epoch: frame.epoch, start: frame.offset, end: frame.offset, reset, seen: new Map(frame.history.map((m) => [m.cid ?? '', m.offset])) }
}

/**
 * Checks one subscriber's log against the room's promise: every offset once,
 * in order, within an epoch; a `joined` after the first starts over (a reset,
 * when `recovered` is false, or a resumed join's replay, when true and the
 * epoch is the same). Every acknowledged message must have arrived (live or
 * in a `joined` history) unless a reset came after the gap, before anything
 * that followed it.
 */
export function checkLog (log: readonly LogEntry[], acks: ReadonlyMap<string, Ack>): LogReport {
  const report: LogReport = { live: 0, resets: 0, duplicates: 0, storedTwice: [], outOfOrder: 0, skipped: 0, lost: [], excused: 0, badJoined: 0 }
  const segments: Segment[] = []
  const received = new Set<string>()
  // Where each cid was delivered live, in any segment.
  const liveEver = new Map<string, number>()
  let current: Segment | undefined

  const breach = (what: string, message: ChatMessage, segment: Segment | undefined): void => {
    const where = segment === undefined ? 'before any joined' : `after offset ${segment.end} of epoch ${segment.epoch}`
    report.first ??= `${what}: offset ${message.offset} (${message.cid ?? 'no cid'}) ${where}, message #${report.live}`
  }
  const live = (message: ChatMessage): void => {
    report.live++
    const cid = message.cid ?? ''
    if (current === undefined) {
      report.outOfOrder++
      breach('out of order', message, current)
      return
    }
    const before = current.seen.get(cid) ?? liveEver.get(cid)
    if (before === message.offset) {
      report.duplicates++
      breach('duplicate', message, current)
      return
    }
    if (before !== undefined) {
      report.storedTwice.push(`${cid}@${before}/${message.offset}`)
      breach('stored twice', message, current)
    }
    if (message.offset <= current.end) {
      if (before === undefined) {
        report.outOfOrder++
        breach('out of order', message, current)
      }
    } else {
      if (message.offset > current.end + 1) breach('skipped', message, current)
      report.skipped += message.offset - current.end - 1
      current.end = message.offset
    }
    liveEver.set(cid, message.offset)
    current.seen.set(cid, message.offset)
    received.add(cid)
  }

  for (const entry of log) {
    if (entry.kind === 'message') {
      live(entry.message)
      continue
    }
    const { frame } = entry
    if (frame.history.some((m) => m.offset > frame.offset)) report.badJoined++
    if (current !== undefined && frame.recovered) {
      if (frame.epoch !== current.epoch) {
        report.badJoined++
      } else {
        // A resumed join replays what came after the client's position: live, in effect.
        for (const message of frame.history) live(message)
        continue
      }
    }
    const reset = current !== undefined
    if (reset) report.resets++
    current = newSegment(frame, reset)
    segments.push(current)
    for (const cid of current.seen.keys()) received.add(cid)
  }

  for (const ack of acks.values()) {
    if (received.has(ack.cid) || beforeJoining(segments, ack)) continue
    if (excusedByReset(segments, ack)) report.excused++
    else report.lost.push(ack.cid)
  }
  return report
}

/** Whether `ack` was stored before the subscriber's first `joined`: not owed to it (beyond that frame's history). */
function beforeJoining (segments: readonly Segment[], ack: Ack): boolean {
  const first = segments[0]
  return first !== undefined && first.epoch === ack.epoch && ack.offset <= first.start
}

/** Whether a reset `joined` tells the subscriber it may have missed `ack`. */
function excusedByReset (segments: readonly Segment[], ack: Ack): boolean {
  const same = segments.map((s, i) => ({ s, i })).filter(({ s }) => s.epoch === ack.epoch)
  // Inside a stretch that was delivered one by one: a gap nobody announced.
  if (same.some(({ s }) => ack.offset > s.start && ack.offset <= s.end)) return false
  // A reset that starts at or past it.
  if (same.some(({ s }) => s.reset && ack.offset <= s.start)) return true
  // Past the end of the last stretch below it, if a reset followed that stretch.
  const below = same.filter(({ s }) => s.start < ack.offset).at(-1)
  if (below !== undefined) return below.i < segments.length - 1
  // An epoch this subscriber never saw, skipped by a reset.
  return same.length === 0 && segments.some((s) => s.reset)
}

function list (items: string[]): string {
  return items.length === 0 ? '' : ` (${items.slice(0, 5).join(', ')}${items.length > 5 ? ', …' : ''})`
}

/** One line per report, for a test's comment when something is off. */
export function summary (name: string, report: LogReport): string {
  return `${name}: live ${report.live}, resets ${report.resets}, lost ${report.lost.length}${list(report.lost)}, excused ${report.excused}, ` +
    `duplicates ${report.duplicates}, stored twice ${report.storedTwice.length}${list(report.storedTwice)}, out of order ${report.outOfOrder}, skipped offsets ${report.skipped}, bad joined ${report.badJoined}` +
    (report.first === undefined ? '' : `; first: ${report.first}`)
}
