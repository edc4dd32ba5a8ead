import t from 'tap'
import { codePointLength, fitsLength, isRoomName, isWellFormed, ROOM_RULE, sanitizeName, textProblem } from '../../lib/protocol/text.js'
import { ROOM_PATTERN } from '../../lib/protocol/wire.js'

const EMOJI = '\u{1F600}'

t.test('codePointLength and fitsLength', async (t) => {
  t.equal(codePointLength(''), 0)
  t.equal(codePointLength('abc'), 3)
  t.equal(codePointLength(EMOJI.repeat(3)), 3)
  t.equal(codePointLength('a\u{1F469}\u200D\u{1F4BB}b'), 5, 'a ZWJ sequence counts each code point')
  t.equal(codePointLength('\uD83D'), 1, 'a lone high surrogate counts once')
  t.equal(codePointLength('\uDE00x'), 2, 'a lone low surrogate counts once')
  t.equal(codePointLength('\uD83Dx'), 2, 'a high surrogate followed by a non-surrogate is not a pair')

  t.ok(fitsLength('abc', 3))
  t.notOk(fitsLength('abcd', 3))
  t.ok(fitsLength(EMOJI.repeat(3), 3))
  t.notOk(fitsLength(EMOJI.repeat(4), 3))
})

t.test('sanitizeName', async (t) => {
  t.equal(sanitizeName('  alice  '), 'alice')
  t.equal(sanitizeName('al\u0000i\u0007ce\u007F\u0085'), 'alice', 'C0 and C1 controls are removed')
  t.equal(sanitizeName('line\nbreak\ttab'), 'linebreaktab')
  t.equal(sanitizeName('\u202Eevil\u202C'), 'evil', 'bidi overrides are removed')
  t.equal(sanitizeName('\u2066a\u2067b\u2068c\u2069\u200E\u200F'), 'abc', 'bidi isolates and marks are removed')
  t.equal(sanitizeName(' \u0000 bob \u202E '), 'bob', 'blanks exposed by removal are trimmed')
  t.equal(sanitizeName('Zoë 李'), 'Zoë 李', 'ordinary Unicode is kept')

  t.equal(sanitizeName('a'.repeat(32)), 'a'.repeat(32))
  t.equal(sanitizeName('a'.repeat(33)), null)
  t.equal(sanitizeName(`${'a'.repeat(32)}\u0000\u202E`), 'a'.repeat(32), 'the limit applies after removal')
  t.equal(sanitizeName(EMOJI.repeat(32)), EMOJI.repeat(32), 'the limit counts code points')
  t.equal(sanitizeName(EMOJI.repeat(33)), null)

  t.equal(sanitizeName('a\uD800b\uDC00'), 'ab', 'lone surrogates are removed')
  t.equal(sanitizeName(`${EMOJI}b`), `${EMOJI}b`, 'a surrogate pair is kept')
  for (const empty of ['', '   ', '\u0000\u0001', '\u202E \u202C', '\u200B', '\u2060\u3164\u00AD', '\uD800']) {
    t.equal(sanitizeName(empty), null, JSON.stringify(empty))
  }
  for (const notString of [undefined, null, 5, ['alice'], { name: 'alice' }]) {
    t.equal(sanitizeName(notString), null, String(notString))
  }
})

t.test('isRoomName', async (t) => {
  for (const room of ['a', 'lobby', 'Room_2-b', '0', '-', '_', 'a'.repeat(64)]) {
    t.ok(isRoomName(room), JSON.stringify(room))
  }
  for (const room of ['', 'a'.repeat(65), 'a b', 'a.b', 'a/b', 'a:b', 'ä', 'room\n', '\nroom', EMOJI]) {
    t.notOk(isRoomName(room), JSON.stringify(room))
  }
  for (const room of [undefined, null, 5, ['a'], { room: 'a' }]) {
    t.notOk(isRoomName(room), String(room))
  }
})

t.test('ROOM_RULE states the pattern room names must match', async (t) => {
  t.ok(ROOM_RULE.includes(ROOM_PATTERN.source))
})

t.test('textProblem: the one rule for message texts, with the code each client is told', async (t) => {
  const MAX = 5
  const code = (text: unknown): string | undefined => textProblem(text, MAX)?.code

  for (const text of ['a', 'hello', ' x ', EMOJI.repeat(MAX), 'é'.repeat(MAX)]) {
    t.equal(textProblem(text, MAX), null, JSON.stringify(text))
  }
  for (const text of [undefined, null, 5, ['hi'], { text: 'hi' }]) {
    t.equal(code(text), 'invalid_message', String(text))
  }
  for (const text of ['', ' ', '\n\t\r ', '\u00A0\u2003']) {
    t.equal(code(text), 'empty_text', JSON.stringify(text))
  }
  // Invisible: Unicode White_Space or Default_Ignorable_Code_Point, alone or mixed.
  for (const text of ['\u200B', '\u200B\u200C\u200D', '\u2060\uFEFF', '\u3164', '\u00AD', '\u180E', '\u034F', '\uFE0F', '\u{E0041}', ' \u200B\u2028\u3000 ']) {
    // Labelled by code point: a raw U+2028 in a label would break TAP's lines.
    t.equal(code(text), 'empty_text', [...text].map((c) => `U+${(c.codePointAt(0) ?? 0).toString(16)}`).join(' '))
  }
  for (const text of ['a\u200B', '\u200Bx', `${EMOJI}\uFE0F`, '\u0001', '.']) {
    t.equal(code(text), undefined, `${JSON.stringify(text)}: something visible`)
  }
  // A surrogate without its other half is not Unicode: stores would keep U+FFFD in its place.
  for (const text of ['a\uD800b', '\uDC00', `${EMOJI}\uD83D`, '\uDE00\uD83D', '\uD800']) {
    t.equal(code(text), 'invalid_message', JSON.stringify(text))
  }
  for (const text of ['a'.repeat(MAX + 1), EMOJI.repeat(MAX + 1), `${' '.repeat(MAX)}x`]) {
    t.equal(code(text), 'text_too_long', `${text.length} UTF-16 units`)
  }

  t.match(textProblem(5, MAX), { message: /"text" must be a string/ })
  t.match(textProblem('', MAX), { message: /empty/ })
  t.match(textProblem('a\uD800', MAX), { message: /lone surrogate/ })
  t.match(textProblem('a'.repeat(MAX + 1), MAX), { message: `longer than ${MAX} characters` }, 'the message names the limit')
})

t.test('isWellFormed: every surrogate has its other half', async (t) => {
  for (const text of ['', 'abc', EMOJI, `a${EMOJI}b${EMOJI}`, '\uFFFD']) t.equal(isWellFormed(text), true, JSON.stringify(text))
  for (const text of ['\uD800', '\uDFFF', 'a\uD800b', '\uDE00\uD83D', `${EMOJI}\uD83D`]) t.equal(isWellFormed(text), false, JSON.stringify(text))
})
