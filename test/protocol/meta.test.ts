import t from 'tap'
import { checkMeta, MAX_META_DEPTH } from '../../lib/protocol/meta.js'

/** `depth` objects nested in each other. */
function nested (depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = {}
  for (let i = 1; i < depth; i++) value = { a: value }
  return value
}

t.test('a JSON object passes, with its JSON', async (t) => {
  t.strictSame(checkMeta({ replyTo: 3, mentions: ['u1'] }, 100), { ok: true, json: '{"replyTo":3,"mentions":["u1"]}' })
  t.strictSame(checkMeta({}, 2), { ok: true, json: '{}' })
})

t.test('anything but an object is invalid_message', async (t) => {
  for (const value of [null, [], [1], 'text', 5, true, undefined]) {
    t.match(checkMeta(value, 100), { ok: false, code: 'invalid_message', message: '"meta" must be a JSON object' }, JSON.stringify(value) ?? 'undefined')
  }
})

t.test('the size is counted in UTF-8 bytes of the JSON', async (t) => {
  const ascii = { t: 'x'.repeat(10) } // {"t":"xxxxxxxxxx"} is 18 bytes
  t.equal(checkMeta(ascii, 18).ok, true)
  t.match(checkMeta(ascii, 17), { ok: false, code: 'too_large', message: '"meta" is larger than 17 bytes as JSON' })
  const wide = { t: 'é'.repeat(10) } // 18 characters, 28 bytes
  t.equal(checkMeta(wide, 28).ok, true)
  t.match(checkMeta(wide, 27), { ok: false, code: 'too_large' }, 'more bytes than characters')
  const emoji = { t: '🎉'.repeat(5) } // 18 UTF-16 units, 28 bytes
  t.equal(checkMeta(emoji, 28).ok, true)
  t.match(checkMeta(emoji, 27), { ok: false, code: 'too_large' })
})

t.test(`nesting deeper than ${MAX_META_DEPTH} is invalid_message, however deep, and a cycle too`, async (t) => {
  t.equal(checkMeta(nested(MAX_META_DEPTH), 10_000).ok, true)
  t.match(checkMeta(nested(MAX_META_DEPTH + 1), 10_000), { ok: false, code: 'invalid_message', message: /deeper than 32 levels/ })
  t.match(checkMeta({ a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]] }, 10_000), { ok: false, code: 'invalid_message' }, 'arrays count')
  // Deeper than JSON.stringify can go: refused before it is tried.
  const raw = '{"a":' + '['.repeat(50_000) + ']'.repeat(50_000) + '}'
  t.match(checkMeta(JSON.parse(raw), 1_000_000), { ok: false, code: 'invalid_message' })
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  t.match(checkMeta(cycle, 1000), { ok: false, code: 'invalid_message' })
})

t.test('an app\'s object that is not JSON is invalid_message', async (t) => {
  t.match(checkMeta({ n: 1n }, 1000), { ok: false, code: 'invalid_message', message: '"meta" cannot be serialised as JSON' })
  t.match(checkMeta({ toJSON () { throw new Error('no') } }, 1000), { ok: false, code: 'invalid_message' })
})
