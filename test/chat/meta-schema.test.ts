import t from 'tap'
import { checkAppMeta, compileMetaSchema } from '../../lib/chat/meta-schema.js'

const conventions = {
  type: 'object',
  properties: {
    replyTo: { type: 'integer', minimum: 1 },
    mentions: { type: 'array', items: { type: 'string' }, maxItems: 3 },
    kind: { type: 'string', default: 'plain' }
  },
  additionalProperties: false
}

t.test('no schema is null: any object passes', async (t) => {
  t.equal(compileMetaSchema(undefined), null)
})

t.test('a compiled schema answers null for a pass, and the failing path for a failure', async (t) => {
  const check = compileMetaSchema(conventions)
  if (check === null) throw new Error('no check')
  t.equal(check({ replyTo: 3, mentions: ['u1', 'u2'] }), null)
  t.equal(check({}), null)
  t.equal(check({ replyTo: 0 }), '"meta" breaks the schema at /replyTo: must be >= 1')
  t.equal(check({ mentions: ['u1', 7] }), '"meta" breaks the schema at /mentions/1: must be string')
  t.equal(check({ extra: true }), '"meta" breaks the schema at /extra: must NOT have additional properties', 'the forbidden property is named')
  t.equal(check({ 'a/b~c': 1 }), '"meta" breaks the schema at /a~1b~0c: must NOT have additional properties', 'as a JSON Pointer')
  t.match(check({ ['k'.repeat(500)]: 1 }), /at \/k{127}…: must NOT/, 'a long path is cut short')
  const required = compileMetaSchema({ type: 'object', required: ['replyTo'] })
  t.equal(required?.({}), '"meta" breaks the schema: must have required property \'replyTo\'', 'the top level has no path')
})

t.test('nothing is stripped, coerced or defaulted: the meta checked is the meta stored', async (t) => {
  const check = compileMetaSchema(conventions)
  if (check === null) throw new Error('no check')
  const extra = { replyTo: 1, extra: 'x' }
  t.not(check(extra), null, 'refused')
  t.strictSame(extra, { replyTo: 1, extra: 'x' }, 'not stripped')
  const text = { replyTo: '5' }
  t.equal(check(text), '"meta" breaks the schema at /replyTo: must be integer', 'a string is not coerced')
  t.strictSame(text, { replyTo: '5' })
  const plain = { replyTo: 2 }
  t.equal(check(plain), null)
  t.strictSame(plain, { replyTo: 2 }, 'no default filled in')
})

t.test('a bad schema is FST_CHAT_INVALID_OPTION', async (t) => {
  for (const schema of [null, 'object', 5, [], true]) {
    t.throws(() => compileMetaSchema(schema), { code: 'FST_CHAT_INVALID_OPTION', message: /"metaSchema" must be a JSON Schema object/ }, JSON.stringify(schema))
  }
  t.throws(() => compileMetaSchema({ type: 'objekt' }), { code: 'FST_CHAT_INVALID_OPTION', message: /"metaSchema" is not a schema Ajv can compile: schema is invalid/ })
  t.throws(() => compileMetaSchema({ type: 'object', propertys: {} }), { code: 'FST_CHAT_INVALID_OPTION', message: /unknown keyword: "propertys"/ }, 'strict: a typo is not ignored')
  t.throws(() => compileMetaSchema({ $ref: '#/nowhere' }), { code: 'FST_CHAT_INVALID_OPTION', message: /can't resolve reference/ })
  t.throws(() => compileMetaSchema({ type: 'object', properties: { at: { type: 'string', format: 'date-time' } } }), { code: 'FST_CHAT_INVALID_OPTION', message: /unknown format "date-time"/ })
  t.throws(() => compileMetaSchema({ $async: true, type: 'object' }), { code: 'FST_CHAT_INVALID_OPTION', message: /must not be an \$async schema/ })
})

t.test('checkAppMeta checks shape, size and schema, and returns a JSON copy', async (t) => {
  const check = compileMetaSchema({ type: 'object', properties: { at: { type: 'string' } } })
  const at = new Date(0)
  const given = { at, list: [1] }
  const result = checkAppMeta(given, 100, check)
  t.strictSame(result, { ok: true, meta: { at: at.toJSON(), list: [1] } }, 'the schema sees the JSON form: a Date is a string')
  if (result.ok) t.not(result.meta.list, given.list, 'a copy')
  t.strictSame(checkAppMeta({ at: 5 }, 100, check), { ok: false, message: '"meta" breaks the schema at /at: must be string' })
  t.strictSame(checkAppMeta({ at: 'x'.repeat(100) }, 100, check), { ok: false, code: 'too_large', message: '"meta" is larger than 100 bytes as JSON' })
  t.strictSame(checkAppMeta(null, 100, null), { ok: false, code: 'invalid_message', message: '"meta" must be a JSON object' })
  t.strictSame(checkAppMeta({ any: 'thing' }, 100, null), { ok: true, meta: { any: 'thing' } })
})
