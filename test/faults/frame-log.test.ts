// The fault tests' log checker, on logs written by hand: it must see each
// kind of breach, and accept a gap that a reset announced.
import t from 'tap'
import type { ChatMessage, JoinedFrame } from '../../lib/protocol/wire.js'
import { checkLog } from '../helpers/frame-log.js'
import type { Ack, LogEntry } from '../helpers/frame-log.js'

const from = { id: 'u', name: 'u' }

function msg (offset: number, cid: string): LogEntry {
  const message: ChatMessage = { room: 'r', offset, ts: 0, from, text: cid, cid }
  return { kind: 'message', message }
}

function joined (epoch: string, offset: number, history: Array<[number, string]> = [], recovered = false): LogEntry {
  const frame: JoinedFrame = {
    type: 'joined',
    room: 'r',
    epoch,
    offset,
    recovered,
    history: history.map(([o, cid]) => ({ room: 'r', offset: o, ts: 0, from, text: cid, cid })),
    users: [],
    count: 0
  }
  return { kind: 'joined', frame }
}

function acks (...list: Array<[string, number, string]>): Map<string, Ack> {
  return new Map(list.map(([cid, offset, epoch]) => [cid, { cid, offset, epoch }]))
}

const three = acks(['a', 1, 'E'], ['b', 2, 'E'], ['c', 3, 'E'])

t.test('a clean log: every acknowledged message once, in order', async (t) => {
  const report = checkLog([joined('E', 0), msg(1, 'a'), msg(2, 'b'), msg(3, 'c')], three)
  t.same(report, { live: 3, resets: 0, duplicates: 0, storedTwice: [], outOfOrder: 0, skipped: 0, lost: [], excused: 0, badJoined: 0 })
})

t.test('a message delivered twice, or again after the joined history that held it', async (t) => {
  const twice = checkLog([joined('E', 0), msg(1, 'a'), msg(2, 'b'), msg(2, 'b'), msg(3, 'c')], three)
  t.equal(twice.duplicates, 1)
  t.equal(twice.skipped, 0)
  const atJoin = checkLog([joined('E', 2, [[1, 'a'], [2, 'b']]), msg(2, 'b'), msg(3, 'c')], three)
  t.equal(atJoin.duplicates, 1, 'the last history message, live')
  t.same(atJoin.lost, [])
})

t.test('a message stored twice: its cid at two offsets', async (t) => {
  const report = checkLog([joined('E', 0), msg(1, 'a'), msg(2, 'b'), msg(3, 'a'), msg(4, 'c')], three)
  t.same(report.storedTwice, ['a@1/3'])
  t.equal(report.duplicates, 0)
  t.equal(report.skipped, 0, 'the second copy still takes its offset')
  t.match(report.first, /^stored twice: offset 3 \(a\)/)
})

t.test('an epoch change without a joined: offsets go back', async (t) => {
  const report = checkLog([joined('E', 0), msg(1, 'a'), msg(2, 'b'), msg(1, 'x'), msg(2, 'y')], acks(['a', 1, 'E'], ['b', 2, 'E'], ['x', 1, 'F'], ['y', 2, 'F']))
  t.equal(report.outOfOrder, 2)
  t.equal(report.resets, 0)
  t.match(report.first, /^out of order: offset 1 \(x\) after offset 2 of epoch E/, 'says where it went wrong')
})

t.test('a gap within an epoch: the skipped offsets, and the acknowledged message lost', async (t) => {
  const report = checkLog([joined('E', 0), msg(1, 'a'), msg(3, 'c')], three)
  t.equal(report.skipped, 1)
  t.same(report.lost, ['b'])
})

t.test('a message missing at the end, with nothing after it, is lost', async (t) => {
  t.same(checkLog([joined('E', 0), msg(1, 'a'), msg(2, 'b')], three).lost, ['c'])
})

t.test('a gap announced by a reset joined is excused', async (t) => {
  // Same epoch, the stream no longer held the gap: the reset starts past it.
  const trimmed = checkLog([joined('E', 0), msg(1, 'a'), joined('E', 3, [[3, 'c']])], three)
  t.same(trimmed.lost, [])
  t.equal(trimmed.excused, 1)
  t.equal(trimmed.resets, 1)
  // A new epoch: what the old one still had after the last delivered message is excused too.
  const restarted = checkLog([joined('E', 0), msg(1, 'a'), joined('F', 1, [[1, 'x']]), msg(2, 'y')],
    acks(['a', 1, 'E'], ['b', 2, 'E'], ['x', 1, 'F'], ['y', 2, 'F']))
  t.same(restarted.lost, [])
  t.equal(restarted.excused, 1)
  t.equal(restarted.outOfOrder, 0)
})

t.test('a reset does not excuse a gap after it', async (t) => {
  const report = checkLog([joined('E', 0), joined('F', 0), msg(1, 'x'), msg(3, 'z')], acks(['x', 1, 'F'], ['y', 2, 'F'], ['z', 3, 'F']))
  t.same(report.lost, ['y'])
  t.equal(report.skipped, 1)
})

t.test('a resumed join continues its epoch; a recovered joined of another epoch is a breach', async (t) => {
  const resumed = checkLog([joined('E', 0), msg(1, 'a'), joined('E', 3, [[2, 'b'], [3, 'c']], true)], three)
  t.same(resumed, { live: 3, resets: 0, duplicates: 0, storedTwice: [], outOfOrder: 0, skipped: 0, lost: [], excused: 0, badJoined: 0 })
  t.equal(checkLog([joined('E', 0), joined('F', 0, [], true)], new Map()).badJoined, 1)
  t.equal(checkLog([joined('E', 1, [[2, 'b']])], new Map()).badJoined, 1, 'history above the offset')
})

t.test('what was stored before the first joined is owed only as far as its history goes', async (t) => {
  const report = checkLog([joined('E', 2, [[2, 'b']]), msg(3, 'c')], three)
  t.same(report.lost, [])
  t.equal(report.excused, 0)
})
