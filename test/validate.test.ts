import t from 'tap'
import { closest, integerOption, refuseUnknownKeys, shown } from '../lib/validate.js'

const CODE = 'FST_CHAT_INVALID_OPTION'

t.test('shown: a value as an error message shows it', async (t) => {
  t.equal(shown('100'), '"100"', 'strings quoted, so "100" and 100 read apart')
  t.equal(shown(100), '100')
  t.equal(shown(1.5), '1.5')
  t.equal(shown(null), 'null')
  t.equal(shown(true), 'true')
  t.equal(shown({ a: 1 }), '{"a":1}')
  t.equal(shown([1, 'x']), '[1,"x"]')
  t.equal(shown(10n), '10n')
  t.equal(shown(() => {}), 'a function')
  t.equal(shown(undefined), 'undefined')
  t.equal(shown(Symbol('s')), 'Symbol(s)')
  t.equal(shown(NaN), 'null', 'as JSON has it')

  const circular: Record<string, unknown> = {}
  circular.self = circular
  t.equal(shown(circular), '[object Object]', 'not JSON: still shown, not thrown')

  const long = shown('x'.repeat(100))
  t.equal(long.length, 60)
  t.equal(long, `"${'x'.repeat(56)}...`, 'cut to 60 characters')
  t.equal(shown('x'.repeat(58)), `"${'x'.repeat(58)}"`, 'up to 60 is shown whole')
  t.equal(shown('x'.repeat(59)), `"${'x'.repeat(56)}...`, '61 is not')
})

t.test('integerOption: an integer from min to max, or a throw that names the option and the value', async (t) => {
  t.equal(integerOption('n', 1, 1), 1)
  t.equal(integerOption('n', 10, 1, 10), 10)
  t.equal(integerOption('n', Number.MAX_SAFE_INTEGER, 0), Number.MAX_SAFE_INTEGER, 'max defaults to the largest safe integer')
  t.equal(integerOption('n', 0, 0), 0)

  for (const value of [0, 11, 1.5, NaN, Infinity, '5', null, undefined, 2 ** 53]) {
    t.throws(() => integerOption('size', value, 1, value === 2 ** 53 ? undefined : 10), { code: CODE }, shown(value))
  }
  t.throws(() => integerOption('n', 2 ** 53, 1, Infinity), { code: CODE }, 'an unsafe integer, whatever max says')
  t.throws(() => integerOption('historySize', '5', 1, 10), {
    code: CODE,
    message: 'fastify-chat: option "historySize" must be an integer from 1 to 10, got "5"'
  })
  const thrown = (() => { try { integerOption('x', -1, 0) } catch (err) { return err } })()
  t.ok(thrown instanceof TypeError, 'a TypeError, as every wrong option')
})

t.test('closest: the known key a typo meant', async (t) => {
  const known = ['maxMessageLength', 'maxPayload', 'path', 'echo', 'historySize']
  t.equal(closest('maxMesageLength', known), 'maxMessageLength', 'a letter missing')
  t.equal(closest('maxmessagelength', known), 'maxMessageLength', 'case does not count')
  t.equal(closest('MAXPAYLOAD', known), 'maxPayload', 'even all in capitals')
  t.equal(closest('historysise', known), 'historySize')
  t.equal(closest('pth', known), 'path', 'short keys allow two edits')
  t.equal(closest('ehco', known), 'echo')
  t.equal(closest('redis', known), null, 'nothing close')
  t.equal(closest('totallyDifferentKey', known), null)
  t.equal(closest('x', []), null, 'nothing known')

  // Two edits always pass; longer keys allow a quarter of their length.
  t.equal(closest('abcdefghijkl', ['abcdefghiXYZ']), 'abcdefghiXYZ', 'three edits in twelve characters')
  t.equal(closest('abcdefghijk', ['abcdefghXYZ']), null, 'three edits in eleven characters')
})

t.test('refuseUnknownKeys: the first unknown key is refused, with a suggestion when one is close', async (t) => {
  const known = new Set(['maxMessageLength', 'path'])
  t.doesNotThrow(() => refuseUnknownKeys({}, known))
  t.doesNotThrow(() => refuseUnknownKeys({ path: '/x', maxMessageLength: 10 }, known))
  t.doesNotThrow(() => refuseUnknownKeys({ path: undefined }, known), 'a known key set to undefined is fine')

  t.throws(() => refuseUnknownKeys({ path: '/x', maxMesageLength: 10 }, known), {
    code: CODE,
    message: 'fastify-chat: option "maxMesageLength" is not a known option (did you mean "maxMessageLength"?)'
  })
  t.throws(() => refuseUnknownKeys({ completelyUnrelated: 1 }, known), {
    code: CODE,
    message: 'fastify-chat: option "completelyUnrelated" is not a known option'
  }, 'no suggestion when nothing is close')
  t.throws(() => refuseUnknownKeys({ brust: 5 }, new Set(['burst', 'messages']), 'rateLimit'), {
    code: CODE,
    message: 'fastify-chat: option "rateLimit.brust" is not a known option (did you mean "rateLimit.burst"?)'
  }, 'a nested object is named with its parent')
  t.throws(() => refuseUnknownKeys({ first: 1, second: 2 }, known), { message: /"first"/ }, 'the first unknown key')
})
