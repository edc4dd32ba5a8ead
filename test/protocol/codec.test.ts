import t from 'tap'
import { decodeClientFrame, encodeEntry, encodeHistory, encodeJoined, encodeMessage, isCursor, isPageLimit, parseSinceParam, peekCid } from '../../lib/protocol/codec.js'
import type { Decoded } from '../../lib/protocol/codec.js'
import { MAX_CID_LENGTH, MAX_CURSOR_LENGTH, MAX_HISTORY_PAGE, MAX_MEMBERS_PAGE } from '../../lib/protocol/wire.js'
import type { ChatMessage } from '../../lib/protocol/wire.js'

const MAX = 10
const META_MAX = 64
const EMOJI = '\u{1F600}'

/** Decodes a raw string as is, anything else as its JSON. */
function decode (frame: unknown, max = MAX): Decoded {
  return decodeClientFrame(typeof frame === 'string' ? frame : JSON.stringify(frame), max, META_MAX)
}

/** The failure's code and echoed cid, with `cid` left out when none was echoed. */
function failure (result: Decoded): { code: string, cid?: string } {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result)}`)
  if (typeof result.message !== 'string' || result.message === '') throw new Error(`no message in ${JSON.stringify(result)}`)
  return result.cid === undefined ? { code: result.code } : { code: result.code, cid: result.cid }
}

t.test('plain text frames', async (t) => {
  t.test('a frame whose first non-blank character is not "{" is a message, kept as sent', async (t) => {
    t.strictSame(decode('hello'), { ok: true, frame: { type: 'message', text: 'hello' } })
    t.strictSame(decode('  hi there \n', 100), { ok: true, frame: { type: 'message', text: '  hi there \n' } })
    t.strictSame(decode('hi {"type":"join"}', 100), { ok: true, frame: { type: 'message', text: 'hi {"type":"join"}' } })
  })

  t.test('arrays and other JSON values are plain text, not protocol frames', async (t) => {
    t.strictSame(decode('[{"type":"join","room":"a"}]', 100), {
      ok: true,
      frame: { type: 'message', text: '[{"type":"join","room":"a"}]' }
    })
    t.strictSame(decode('42'), { ok: true, frame: { type: 'message', text: '42' } })
    t.strictSame(decode('"quoted"'), { ok: true, frame: { type: 'message', text: '"quoted"' } })
  })

  t.test('a blank frame is empty_text', async (t) => {
    t.strictSame(failure(decode('')), { code: 'empty_text' })
    t.strictSame(failure(decode(' \t\r\n ')), { code: 'empty_text' })
  })

  t.test('length is measured in code points', async (t) => {
    t.strictSame(decode('a'.repeat(MAX)), { ok: true, frame: { type: 'message', text: 'a'.repeat(MAX) } })
    t.strictSame(failure(decode('a'.repeat(MAX + 1))), { code: 'text_too_long' })

    const emoji = EMOJI.repeat(MAX)
    t.equal(emoji.length, MAX * 2, 'UTF-16 length is twice the limit')
    t.strictSame(decode(emoji), { ok: true, frame: { type: 'message', text: emoji } })
    t.strictSame(failure(decode(EMOJI.repeat(MAX + 1))), { code: 'text_too_long' })
  })
})

t.test('JSON frames', async (t) => {
  t.test('leading whitespace before "{" still makes a JSON frame', async (t) => {
    t.strictSame(decode(' \n\t{"type":"leave","room":"a"}'), { ok: true, frame: { type: 'leave', room: 'a' } })
    t.strictSame(failure(decode('  {not json')), { code: 'invalid_message' })
  })

  t.test('invalid JSON is invalid_message', async (t) => {
    t.strictSame(failure(decode('{')), { code: 'invalid_message' })
    t.strictSame(failure(decode('{"type":"message","text":"hi"')), { code: 'invalid_message' })
    t.strictSame(failure(decode("{'type':'message'}")), { code: 'invalid_message' })
    t.strictSame(failure(decode('{"type":"message"} trailing')), { code: 'invalid_message' })
  })

  t.test('a missing or non-string type is invalid_message', async (t) => {
    t.strictSame(failure(decode({})), { code: 'invalid_message' })
    t.strictSame(failure(decode({ type: 5 })), { code: 'invalid_message' })
    t.strictSame(failure(decode({ type: null })), { code: 'invalid_message' })
    t.strictSame(failure(decode({ type: ['message'] })), { code: 'invalid_message' })
    t.strictSame(failure(decode({ text: 'hi' })), { code: 'invalid_message' })
  })

  t.test('an unknown type is unknown_type, with a bounded message', async (t) => {
    t.strictSame(failure(decode({ type: 'shout', text: 'hi' })), { code: 'unknown_type' })
    t.strictSame(failure(decode({ type: 'Message', text: 'hi' })), { code: 'unknown_type' }, 'types are case-sensitive')

    const result = decode({ type: 'x'.repeat(1000) })
    t.equal(failure(result).code, 'unknown_type')
    t.notOk(!result.ok && result.message.includes('x'.repeat(33)), 'the type is cut to 32 characters')
  })
})

t.test('message frames', async (t) => {
  t.test('valid frames keep text, room and cid, and drop anything else', async (t) => {
    t.strictSame(decode({ type: 'message', text: 'hi' }), { ok: true, frame: { type: 'message', text: 'hi' } })
    t.strictSame(decode({ type: 'message', text: 'hi', room: 'dev', cid: 'c1', extra: true }), {
      ok: true,
      frame: { type: 'message', text: 'hi', room: 'dev', cid: 'c1' }
    })
  })

  t.test('text must be a string', async (t) => {
    t.strictSame(failure(decode({ type: 'message' })), { code: 'invalid_message' })
    t.strictSame(failure(decode({ type: 'message', text: 5 })), { code: 'invalid_message' })
    t.strictSame(failure(decode({ type: 'message', text: null })), { code: 'invalid_message' })
    t.strictSame(failure(decode({ type: 'message', text: ['hi'] })), { code: 'invalid_message' })
  })

  t.test('blank text is empty_text', async (t) => {
    t.strictSame(failure(decode({ type: 'message', text: '' })), { code: 'empty_text' })
    t.strictSame(failure(decode({ type: 'message', text: ' \n ' })), { code: 'empty_text' })
    t.strictSame(failure(decode('{"type":"message","text":"\\u200b"}')), { code: 'empty_text' }, 'only a zero-width space')
    t.strictSame(failure(decode('\u200B\u2060')), { code: 'empty_text' }, 'invisible plain text too')
  })

  t.test('a lone surrogate is invalid_message, in the text or the cid', async (t) => {
    t.strictSame(failure(decode('{"type":"message","text":"a\\ud800b"}')), { code: 'invalid_message' })
    t.strictSame(failure(decode('{"type":"message","text":"\\udc00","cid":"c1"}')), { code: 'invalid_message', cid: 'c1' })
    t.strictSame(failure(decode('{"type":"message","text":"hi","cid":"c\\ud800"}')), { code: 'invalid_message' }, 'such a cid is not echoed')
    t.equal(peekCid('{"cid":"c\\ud800"}'), undefined)
    t.strictSame(decode('{"type":"message","text":"\\ud83d\\ude00"}'), { ok: true, frame: { type: 'message', text: EMOJI } }, 'a pair is one character')
  })

  t.test('text length is measured in code points', async (t) => {
    const emoji = EMOJI.repeat(MAX)
    t.strictSame(decode({ type: 'message', text: emoji }), { ok: true, frame: { type: 'message', text: emoji } })
    t.strictSame(failure(decode({ type: 'message', text: EMOJI.repeat(MAX + 1) })), { code: 'text_too_long' })
    t.strictSame(failure(decode({ type: 'message', text: 'a'.repeat(MAX + 1) })), { code: 'text_too_long' })
  })

  t.test('an invalid room is invalid_room', async (t) => {
    for (const room of ['', 'has space', 'a'.repeat(65), 5, null, { name: 'a' }]) {
      t.strictSame(failure(decode({ type: 'message', text: 'hi', room })), { code: 'invalid_room' }, JSON.stringify(room))
    }
  })
})

t.test('message frames with meta', async (t) => {
  t.test('an object is kept as sent, alongside room and cid', async (t) => {
    const meta = { replyTo: 4, mentions: ['u2'], nested: { ok: [true, null] } }
    t.strictSame(decode({ type: 'message', text: 'hi', room: 'r', cid: 'c1', meta }), { ok: true, frame: { type: 'message', text: 'hi', room: 'r', cid: 'c1', meta } })
    t.strictSame(decode({ type: 'message', text: 'hi', meta: {} }), { ok: true, frame: { type: 'message', text: 'hi', meta: {} } })
  })

  t.test('a frame without meta decodes without a meta key', async (t) => {
    const decoded = decode({ type: 'message', text: 'hi' })
    t.ok(decoded.ok && !Object.hasOwn(decoded.frame, 'meta'))
  })

  t.test('anything but an object is invalid_message, with the cid echoed', async (t) => {
    for (const meta of [null, [], ['a'], 'text', 3, false]) {
      t.strictSame(failure(decode({ type: 'message', text: 'hi', cid: 'c1', meta })), { code: 'invalid_message', cid: 'c1' }, JSON.stringify(meta))
    }
  })

  t.test(`more than maxMetaBytes (${META_MAX}) of JSON is too_large`, async (t) => {
    // {"k":"…"} is 8 bytes around the value.
    t.equal(decode({ type: 'message', text: 'hi', meta: { k: 'x'.repeat(META_MAX - 8) } }).ok, true)
    t.strictSame(failure(decode({ type: 'message', text: 'hi', cid: 'c2', meta: { k: 'x'.repeat(META_MAX - 7) } })), { code: 'too_large', cid: 'c2' })
  })

  t.test('nesting deeper than JSON.stringify can take is refused, not thrown', async (t) => {
    const raw = '{"type":"message","text":"hi","meta":{"a":' + '['.repeat(20_000) + ']'.repeat(20_000) + '}}'
    t.strictSame(failure(decodeClientFrame(raw, MAX, 100_000)), { code: 'invalid_message' })
  })

  t.test('the text is checked first', async (t) => {
    t.strictSame(failure(decode({ type: 'message', text: '', meta: 5 })), { code: 'empty_text' })
  })
})

t.test('join frames', async (t) => {
  t.test('valid frames, with and without since', async (t) => {
    t.strictSame(decode({ type: 'join', room: 'dev' }), { ok: true, frame: { type: 'join', room: 'dev' } })
    t.strictSame(decode({ type: 'join', room: 'dev', since: { epoch: 'e:1', offset: 0, extra: 1 } }), {
      ok: true,
      frame: { type: 'join', room: 'dev', since: { epoch: 'e:1', offset: 0 } }
    })
    t.strictSame(decode({ type: 'join', room: 'dev', since: { epoch: 'e', offset: 12 } }), {
      ok: true,
      frame: { type: 'join', room: 'dev', since: { epoch: 'e', offset: 12 } }
    })
  })

  t.test('a missing or invalid room is invalid_room', async (t) => {
    t.strictSame(failure(decode({ type: 'join' })), { code: 'invalid_room' })
    t.strictSame(failure(decode({ type: 'join', room: 'a.b' })), { code: 'invalid_room' })
    t.strictSame(failure(decode({ type: 'join', room: 7 })), { code: 'invalid_room' })
  })

  t.test('a malformed since is invalid_message', async (t) => {
    const bad = [
      null,
      'e:1',
      [],
      {},
      { epoch: 'e' },
      { offset: 1 },
      { epoch: 5, offset: 1 },
      { epoch: 'e', offset: -1 },
      { epoch: 'e', offset: 1.5 },
      { epoch: 'e', offset: '1' },
      { epoch: 'e', offset: Number.MAX_SAFE_INTEGER + 1 }
    ]
    for (const since of bad) {
      t.strictSame(failure(decode({ type: 'join', room: 'dev', since })), { code: 'invalid_message' }, JSON.stringify(since))
    }
  })
})

t.test('direct joins: `with` names the other user', async (t) => {
  t.strictSame(decode({ type: 'join', with: 'bob' }), { ok: true, frame: { type: 'join', with: 'bob' } })
  t.strictSame(decode({ type: 'join', with: 'b'.repeat(128), since: { epoch: 'e', offset: 3 }, cid: 'c' }), {
    ok: true,
    frame: { type: 'join', with: 'b'.repeat(128), cid: 'c', since: { epoch: 'e', offset: 3 } }
  })
  for (const other of ['', 'b'.repeat(129), 5, null, {}, ['bob'], '\uD800']) {
    t.strictSame(failure(decode({ type: 'join', with: other, cid: 'c' })), { code: 'invalid_message', cid: 'c' }, JSON.stringify(other))
  }
  t.strictSame(failure(decode({ type: 'join', with: 'bob', room: 'dev' })), { code: 'invalid_message' }, 'not both')
  t.strictSame(failure(decode({ type: 'join', with: 'bob', since: { epoch: 'e' } })), { code: 'invalid_message' }, 'a bad since')
  t.strictSame(decode({ type: 'join', room: 'dev', cid: 'c' }), { ok: true, frame: { type: 'join', room: 'dev', cid: 'c' } }, 'a join by name keeps its cid too, for its errors')
})

t.test('refresh frames', async (t) => {
  t.strictSame(decode({ type: 'refresh', token: 'abc' }), { ok: true, frame: { type: 'refresh', token: 'abc' } })
  t.strictSame(decode({ type: 'refresh', token: 't'.repeat(8192) }), { ok: true, frame: { type: 'refresh', token: 't'.repeat(8192) } })
  for (const token of [undefined, '', 't'.repeat(8193), 5, null]) {
    t.strictSame(failure(decode({ type: 'refresh', token })), { code: 'invalid_message' }, JSON.stringify(token))
  }
})

t.test('leave frames', async (t) => {
  t.strictSame(decode({ type: 'leave', room: 'dev', cid: 'c1' }), { ok: true, frame: { type: 'leave', room: 'dev' } })
  t.strictSame(failure(decode({ type: 'leave' })), { code: 'invalid_room' })
  t.strictSame(failure(decode({ type: 'leave', room: 'no/slash' })), { code: 'invalid_room' })
})

t.test('name frames', async (t) => {
  t.strictSame(decode({ type: 'name', name: '  Alice\u202E ' }), { ok: true, frame: { type: 'name', name: 'Alice' } })
  for (const name of [undefined, '', '   ', '\u0000\u202E', 'a'.repeat(33), 5, null]) {
    t.strictSame(failure(decode({ type: 'name', name })), { code: 'invalid_name' }, JSON.stringify(name))
  }
})

t.test('members frames', async (t) => {
  t.strictSame(decode({ type: 'members', room: 'dev' }), { ok: true, frame: { type: 'members', room: 'dev' } })
  t.strictSame(decode({ type: 'members', room: 'dev', limit: 1, after: '42', cid: 'c1', extra: true }),
    { ok: true, frame: { type: 'members', room: 'dev', limit: 1, after: '42', cid: 'c1' } }, 'limit, after and cid kept, the rest dropped')
  const cursor = 'x'.repeat(MAX_CURSOR_LENGTH)
  t.strictSame(decode({ type: 'members', room: 'dev', limit: MAX_MEMBERS_PAGE, after: cursor }),
    { ok: true, frame: { type: 'members', room: 'dev', limit: MAX_MEMBERS_PAGE, after: cursor } }, 'the largest limit and the longest cursor')
  for (const room of [undefined, '', 'no/slash', 5]) {
    t.strictSame(failure(decode({ type: 'members', room, cid: 'c2' })), { code: 'invalid_room', cid: 'c2' }, JSON.stringify(room))
  }
  for (const limit of [0, -1, 1.5, MAX_MEMBERS_PAGE + 1, '10', null, Infinity]) {
    t.strictSame(failure(decode({ type: 'members', room: 'dev', limit, cid: 'c3' })), { code: 'invalid_message', cid: 'c3' }, `limit ${String(limit)}`)
  }
  for (const after of ['', 'x'.repeat(MAX_CURSOR_LENGTH + 1), 5, null, {}, '\uD800']) {
    t.strictSame(failure(decode({ type: 'members', room: 'dev', after })), { code: 'invalid_message' }, `after ${JSON.stringify(after)}`)
  }
  t.equal(isPageLimit(MAX_MEMBERS_PAGE), true)
  t.equal(isPageLimit(0), false)
  t.equal(isCursor('1'), true)
  t.equal(isCursor(''), false)
})

t.test('history frames', async (t) => {
  t.strictSame(decode({ type: 'history', room: 'dev', before: 10, limit: 5 }), { ok: true, frame: { type: 'history', room: 'dev', before: 10, limit: 5 } })
  t.strictSame(decode({ type: 'history', room: 'dev', before: 0, limit: 1, cid: 'h1' }), { ok: true, frame: { type: 'history', room: 'dev', before: 0, limit: 1, cid: 'h1' } }, 'before 0 is a page (an empty one)')
  t.strictSame(decode({ type: 'history', room: 'dev', before: Number.MAX_SAFE_INTEGER, limit: MAX_HISTORY_PAGE }),
    { ok: true, frame: { type: 'history', room: 'dev', before: Number.MAX_SAFE_INTEGER, limit: MAX_HISTORY_PAGE } }, 'the largest before and limit')
  for (const room of [undefined, '', 'no spaces', 'x'.repeat(65), 7]) {
    t.strictSame(failure(decode({ type: 'history', room, before: 5, limit: 5, cid: 'c2' })), { code: 'invalid_room', cid: 'c2' }, `room ${JSON.stringify(room)}`)
  }
  for (const before of [undefined, null, -1, 1.5, '10', Number.MAX_SAFE_INTEGER + 1, [], {}, true]) {
    t.strictSame(failure(decode({ type: 'history', room: 'dev', before, limit: 5, cid: 'c3' })), { code: 'invalid_message', cid: 'c3' }, `before ${JSON.stringify(before)}`)
  }
  for (const limit of [undefined, null, 0, -1, 2.5, '5', MAX_HISTORY_PAGE + 1, [], true]) {
    t.strictSame(failure(decode({ type: 'history', room: 'dev', before: 5, limit, cid: 'c4' })), { code: 'invalid_message', cid: 'c4' }, `limit ${JSON.stringify(limit)}`)
  }
  for (const extra of [{ after: 3 }, { since: { epoch: 'e', offset: 1 } }, { reverse: true }, { text: 'hi' }]) {
    t.strictSame(failure(decode({ type: 'history', room: 'dev', before: 5, limit: 5, cid: 'c5', ...extra })), { code: 'invalid_message', cid: 'c5' }, `a field of no history request: ${JSON.stringify(extra)}`)
  }
  t.strictSame(failure(decode({ type: 'history', room: 'dev', before: 5, limit: 5, cid: 'x'.repeat(MAX_CID_LENGTH + 1) })), { code: 'invalid_message' }, 'an overlong cid is the error, not echoed')
  const long = decode({ type: 'history', room: 'dev', before: 5, limit: 5, ['k'.repeat(1000)]: 1 })
  t.ok(!long.ok && long.message.length < 100, 'an unknown field is named within bounds')
})

t.test('encodeHistory', async (t) => {
  const from = { id: 'u1', name: 'alice' }
  const messages: ChatMessage[] = [1, 2, 3, 4].map((offset) => ({ room: 'r', offset, ts: 0, from, text: 'x'.repeat(100) }))
  const frame = { type: 'history' as const, room: 'r', epoch: 'e1', messages, more: false }

  t.test('with room for everything, it is the frame as JSON', async (t) => {
    t.equal(encodeHistory(frame, 1 << 20), JSON.stringify(frame))
    t.equal(encodeHistory({ ...frame, more: true, cid: 'h"1' }, 1 << 20), JSON.stringify({ ...frame, more: true, cid: 'h"1' }))
    t.equal(encodeHistory({ ...frame, messages: [] }, 1 << 20), JSON.stringify({ ...frame, messages: [] }))
  })

  t.test('it keeps the latest messages that fit, and says there is more', async (t) => {
    const full = Buffer.byteLength(JSON.stringify(frame))
    const one = Buffer.byteLength(JSON.stringify(messages[0])) + 1
    for (const [maxBytes, kept] of [[full, 4], [full - 1, 3], [full - one, 3], [full - one - 1, 2], [full - 3 * one, 1], [0, 1]]) {
      const encoded = encodeHistory(frame, maxBytes)
      const decoded = JSON.parse(encoded) as typeof frame
      t.strictSame(decoded.messages.map((m) => m.offset), [4, 3, 2, 1].slice(0, kept).reverse(), `${maxBytes} bytes`)
      t.equal(decoded.more, kept < 4, 'more once any is left out')
      if (maxBytes > 0) t.ok(Buffer.byteLength(encoded) <= maxBytes, `${Buffer.byteLength(encoded)} <= ${maxBytes}`)
    }
  })
})

t.test('cid', async (t) => {
  t.test('a valid cid is echoed on every error after the type check', async (t) => {
    const cases: Array<[object, string]> = [
      [{ type: 'message', text: 5 }, 'invalid_message'],
      [{ type: 'message', text: '' }, 'empty_text'],
      [{ type: 'message', text: 'a'.repeat(MAX + 1) }, 'text_too_long'],
      [{ type: 'message', text: 'hi', room: 'bad room' }, 'invalid_room'],
      [{ type: 'join', room: 'bad room' }, 'invalid_room'],
      [{ type: 'join', room: 'dev', since: { epoch: 'e', offset: -1 } }, 'invalid_message'],
      [{ type: 'leave' }, 'invalid_room'],
      [{ type: 'name', name: '' }, 'invalid_name'],
      [{ type: 'members', room: 'dev', limit: 0 }, 'invalid_message'],
      [{ type: 'shout' }, 'unknown_type']
    ]
    for (const [frame, code] of cases) {
      t.strictSame(failure(decode({ ...frame, cid: 'c-42' })), { code, cid: 'c-42' }, JSON.stringify(frame))
    }
  })

  t.test('an error without a cid has no cid key', async (t) => {
    const result = decode({ type: 'message', text: '' })
    t.equal(result.ok, false)
    t.notOk(Object.hasOwn(result, 'cid'))
  })

  t.test('a cid of 64 characters is accepted', async (t) => {
    const cid = 'c'.repeat(64)
    t.strictSame(decode({ type: 'message', text: 'hi', cid }), { ok: true, frame: { type: 'message', text: 'hi', cid } })
  })

  t.test('a non-string, empty or too long cid is rejected and not echoed', async (t) => {
    for (const cid of [5, null, true, { id: 'x' }, '', 'c'.repeat(65)]) {
      t.strictSame(failure(decode({ type: 'message', text: 'hi', cid })), { code: 'invalid_message' }, JSON.stringify(cid))
    }
    t.strictSame(failure(decode({ type: 'shout', cid: '' })), { code: 'invalid_message' }, 'the cid is checked before the type')
  })
})

t.test('parseSinceParam', async (t) => {
  t.strictSame(parseSinceParam('epoch:12'), { epoch: 'epoch', offset: 12 })
  t.strictSame(parseSinceParam('epoch:0'), { epoch: 'epoch', offset: 0 })
  t.strictSame(parseSinceParam('a:b:7'), { epoch: 'a:b', offset: 7 }, 'the last colon separates the offset')
  t.strictSame(parseSinceParam(`e:${Number.MAX_SAFE_INTEGER}`), { epoch: 'e', offset: Number.MAX_SAFE_INTEGER })

  const bad = ['', 'epoch', ':12', 'epoch:x', 'epoch:-1', 'epoch:1.5', `e:${Number.MAX_SAFE_INTEGER + 1}`, 'epoch:NaN', 'epoch:Infinity']
  for (const value of bad) t.equal(parseSinceParam(value), null, JSON.stringify(value))
  for (const value of [undefined, null, 12, ['e:1'], { epoch: 'e', offset: 1 }]) {
    t.equal(parseSinceParam(value), null, String(value))
  }

  // Number() would accept '', blanks, hex and exponents; only digits may pass.
  for (const value of ['epoch:', 'epoch:12:', 'epoch: 12', 'epoch:0x10', 'epoch:1e3', 'epoch:1.0', 'epoch:+5']) {
    t.equal(parseSinceParam(value), null, JSON.stringify(value))
  }
})

t.test('encodeMessage', async (t) => {
  const message: ChatMessage = { room: 'lobby', offset: 3, ts: 1700000000000, from: { id: 'u1', name: 'alice' }, text: 'hi' }

  t.test('key order is type, room, offset, ts, from, text', async (t) => {
    const encoded = encodeMessage(message)
    t.equal(encoded, '{"type":"message","room":"lobby","offset":3,"ts":1700000000000,"from":{"id":"u1","name":"alice"},"text":"hi"}')
    t.strictSame(Object.keys(JSON.parse(encoded)), ['type', 'room', 'offset', 'ts', 'from', 'text'])
  })

  t.test('cid is present only when set', async (t) => {
    const encoded = JSON.parse(encodeMessage({ ...message, cid: 'c1' }))
    t.strictSame(Object.keys(encoded), ['type', 'room', 'offset', 'ts', 'from', 'text', 'cid'])
    t.equal(encoded.cid, 'c1')
    t.notOk(Object.hasOwn(JSON.parse(encodeMessage({ ...message, cid: undefined })), 'cid'))
  })

  t.test('meta comes last, and only when set', async (t) => {
    const meta = { replyTo: 1, mentions: ['u2'] }
    t.equal(encodeMessage({ ...message, cid: 'c1', meta }), '{"type":"message","room":"lobby","offset":3,"ts":1700000000000,"from":{"id":"u1","name":"alice"},"text":"hi","cid":"c1","meta":{"replyTo":1,"mentions":["u2"]}}')
    t.notOk(Object.hasOwn(JSON.parse(encodeMessage({ ...message, meta: undefined })), 'meta'))
  })

  t.test('text is escaped as JSON', async (t) => {
    const text = 'quote " backslash \\ newline \n'
    t.equal(JSON.parse(encodeMessage({ ...message, text })).text, text)
  })
})

t.test('edit and delete frames', async (t) => {
  t.strictSame(decode({ type: 'edit', room: 'lobby', of: 3, text: 'fixed', cid: 'c1' }), { ok: true, frame: { type: 'edit', room: 'lobby', of: 3, text: 'fixed', cid: 'c1' } })
  t.strictSame(decode({ type: 'edit', room: 'lobby', of: 1, text: 'x', extra: true }), { ok: true, frame: { type: 'edit', room: 'lobby', of: 1, text: 'x' } })
  t.strictSame(decode({ type: 'delete', room: 'lobby', of: 3, cid: 'c2' }), { ok: true, frame: { type: 'delete', room: 'lobby', of: 3, cid: 'c2' } })
  t.strictSame(decode({ type: 'delete', room: 'lobby', of: 3, text: 'ignored' }), { ok: true, frame: { type: 'delete', room: 'lobby', of: 3 } })
  for (const type of ['edit', 'delete']) {
    t.strictSame(failure(decode({ type, of: 1, text: 'x', cid: 'c' })), { code: 'invalid_room', cid: 'c' }, `${type} without a room`)
    t.strictSame(failure(decode({ type, room: 'lobby', text: 'x' })), { code: 'invalid_message' }, `${type} without of`)
    for (const of of [0, -1, 1.5, '2', null, Number.MAX_SAFE_INTEGER + 1]) {
      t.strictSame(failure(decode({ type, room: 'lobby', of, text: 'x' })), { code: 'invalid_message' }, `${type} of ${String(of)}`)
    }
  }
  t.strictSame(failure(decode({ type: 'edit', room: 'lobby', of: 1 })), { code: 'invalid_message' }, 'an edit needs text')
  t.strictSame(failure(decode({ type: 'edit', room: 'lobby', of: 1, text: 5 })), { code: 'invalid_message' })
  t.strictSame(failure(decode({ type: 'edit', room: 'lobby', of: 1, text: '\u200b ', cid: 'c' })), { code: 'empty_text', cid: 'c' })
  t.strictSame(failure(decode({ type: 'edit', room: 'lobby', of: 1, text: 'x'.repeat(MAX + 1) })), { code: 'text_too_long' })
})

t.test('edits and deletes encode as their own frames and history items', async (t) => {
  const base = { room: 'lobby', offset: 4, ts: 1700000000000, from: { id: 'u1', name: 'alice' } }
  const edit: ChatMessage = { ...base, text: 'fixed', cid: 'c1', type: 'edit', of: 3 }
  const del: ChatMessage = { ...base, offset: 5, text: '', type: 'delete', of: 3 }
  t.equal(encodeMessage(edit), '{"type":"edit","room":"lobby","offset":4,"ts":1700000000000,"from":{"id":"u1","name":"alice"},"of":3,"text":"fixed","cid":"c1"}')
  t.equal(encodeMessage(del), '{"type":"delete","room":"lobby","offset":5,"ts":1700000000000,"from":{"id":"u1","name":"alice"},"of":3}')
  t.strictSame(JSON.parse(encodeEntry(edit)), edit, 'an edit item is the stored entry')
  const { text: _, ...withoutText } = del
  t.strictSame(JSON.parse(encodeEntry(del)), withoutText, 'a delete item has no text')
  const message: ChatMessage = { ...base, offset: 3, text: 'hi' }
  t.equal(encodeEntry(message), JSON.stringify(message), 'a message item as today')
  const joined = JSON.parse(encodeJoined({ type: 'joined', room: 'lobby', epoch: 'e', offset: 5, recovered: true, history: [message, edit, del], users: [], count: 0 }, 1 << 20))
  t.strictSame(joined.history, [message, edit, withoutText])
})

t.test('the browser client checks rooms with the server\'s pattern', async (t) => {
  const client = await import('../../lib/client.js')
  const wire = await import('../../lib/protocol/wire.js')
  t.equal(client.ROOM_PATTERN.source, wire.ROOM_PATTERN.source)
  t.equal(client.ROOM_PATTERN.flags, wire.ROOM_PATTERN.flags)
})

t.test('encodeJoined', async (t) => {
  const from = { id: 'u1', name: 'alice' }
  const history: ChatMessage[] = [1, 2, 3, 4].map((offset) => ({ room: 'r', offset, ts: 0, from, text: 'x'.repeat(100) }))
  const frame = { type: 'joined' as const, room: 'r', epoch: 'e1', offset: 4, recovered: false, history, users: [from], count: 12345 }

  t.test('with room for everything, it is the frame as JSON', async (t) => {
    t.equal(encodeJoined(frame, 1 << 20), JSON.stringify(frame))
    const recovered = { ...frame, recovered: true }
    t.equal(encodeJoined(recovered, 1 << 20), JSON.stringify(recovered))
  })

  t.test('a recovered replay that is cut is not recovered: the client has a gap', async (t) => {
    const recovered = { ...frame, recovered: true }
    const decoded = JSON.parse(encodeJoined(recovered, Buffer.byteLength(JSON.stringify(recovered)) - 10)) as typeof frame
    t.strictSame([decoded.recovered, decoded.history.map((m) => m.offset)], [false, [2, 3, 4]])
  })

  t.test('it keeps the latest messages that fit, whole frame included', async (t) => {
    const full = Buffer.byteLength(JSON.stringify(frame))
    const one = Buffer.byteLength(JSON.stringify(history[0])) + 1
    for (const [maxBytes, kept] of [[full, 4], [full - 1, 3], [full - one, 3], [full - one - 1, 2], [full - 3 * one, 1], [0, 0]]) {
      const encoded = encodeJoined(frame, maxBytes)
      const decoded = JSON.parse(encoded) as typeof frame
      t.strictSame(decoded.history.map((m) => m.offset), [4, 3, 2, 1].slice(0, kept).reverse(), `${maxBytes} bytes`)
      if (kept > 0) t.ok(Buffer.byteLength(encoded) <= maxBytes, `${Buffer.byteLength(encoded)} <= ${maxBytes}`)
      t.strictSame([decoded.offset, decoded.users, decoded.count], [4, [from], 12345], 'offset, users and count are never cut')
    }
  })

  t.test('a direct room\'s `with` is kept whole, and counted', async (t) => {
    const direct = { ...frame, with: { id: 'u2', name: 'b'.repeat(200) } }
    const decoded = JSON.parse(encodeJoined(direct, 1 << 20)) as typeof direct
    t.strictSame(decoded, direct)
    const tight = encodeJoined(direct, Buffer.byteLength(JSON.stringify(direct)) - 1)
    t.ok(Buffer.byteLength(tight) <= Buffer.byteLength(JSON.stringify(direct)) - 1)
    t.strictSame((JSON.parse(tight) as typeof direct).with, direct.with)
  })

  t.test('counts bytes, not characters', async (t) => {
    const wide = { ...frame, history: [{ ...history[0], text: '\u0001'.repeat(100) }, { ...history[1], text: '李'.repeat(100) }] }
    const full = Buffer.byteLength(JSON.stringify(wide))
    t.equal(JSON.parse(encodeJoined(wide, full)).history.length, 2)
    t.equal(JSON.parse(encodeJoined(wide, full - 1)).history.length, 1)
  })
})
