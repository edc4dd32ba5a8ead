import Fastify from 'fastify'
import t from 'tap'
import fastifyChat from '../index.js'
import { FST_CHAT_INVALID_OPTION } from '../lib/errors.js'
import { defaults, resolveOptions } from '../lib/options.js'
import type { FastifyChatOptions } from '../lib/options.js'
import { MemoryStore } from '../lib/stores/memory-store.js'
import { LocalAdapter } from '../lib/broker/local-adapter.js'

const CODE = 'FST_CHAT_INVALID_OPTION'

/** Lets a test hand resolveOptions what plain JavaScript callers could. */
function loose (opts: unknown): FastifyChatOptions {
  return opts as FastifyChatOptions
}

function storeWithout (method: string): Record<string, unknown> {
  const store: Record<string, unknown> = {
    append: async () => {},
    recent: async () => {},
    since: async () => {},
    entry: async () => null,
    epoch: async () => ''
  }
  delete store[method]
  return store
}

t.test('no options resolve to the defaults, complete and frozen', async (t) => {
  const expected = {
    path: '/chat',
    echo: true,
    defaultRoom: 'lobby',
    historySize: 100,
    maxMessageLength: 2000,
    maxMetaBytes: 2048,
    metaSchema: null,
    maxRoomsPerClient: 20,
    identify: null,
    authorize: null,
    refresh: null,
    onMessage: null,
    editWindowMs: 0,
    serveClient: true,
    maxPayload: 65536,
    heartbeatInterval: 30_000,
    maxBufferedBytes: 1024 * 1024,
    rateLimit: { messages: 10, intervalMs: 1000, burst: 20 },
    signals: new Set(['typing']),
    signalRate: { messages: 5, intervalMs: 1000, burst: 5 },
    maxConnections: 10_000,
    maxConnectionsPerIp: 0,
    allowedOrigins: null,
    closeTimeout: 2000,
    presenceGraceMs: 1000,
    presenceListMax: 100,
    presenceEventsMax: 200,
    occupancyIntervalMs: 1000,
    maxConcurrentJoins: 256,
    maxHistoryPage: 100,
    secret: null
  }
  const { adapter, ...resolved } = resolveOptions()
  t.strictSame(resolved, expected)
  t.type(adapter, LocalAdapter, 'the in-process adapter over a new in-memory store')
  t.ok(Object.isFrozen(resolveOptions()))
  t.strictSame({ ...resolveOptions({}), adapter: null }, { ...expected, adapter: null })
  t.not(resolveOptions(), resolveOptions(), 'every call returns a new object')
  t.ok(Object.isFrozen(defaults))
})

t.test('given values are kept and the user object is left alone', async (t) => {
  const identify = async (): Promise<{ id: string }> => ({ id: 'u1' })
  const onMessage = (): boolean => true
  const authorize = (): boolean => true
  const refresh = (): false => false
  const store = new MemoryStore()
  const opts: FastifyChatOptions = {
    path: '/ws',
    echo: false,
    defaultRoom: 'general',
    historySize: 0,
    maxMessageLength: 1,
    maxMetaBytes: 2,
    maxRoomsPerClient: 1,
    identify,
    authorize,
    refresh,
    onMessage,
    editWindowMs: 60_000,
    store,
    serveClient: false,
    maxPayload: 16,
    heartbeatInterval: 0,
    maxBufferedBytes: 1,
    rateLimit: false,
    signals: ['typing', 'stopped-typing', 'app.recording:1'],
    signalRate: false,
    maxConnections: 1,
    maxConnectionsPerIp: 1,
    closeTimeout: 0,
    presenceListMax: 0,
    presenceEventsMax: 0,
    occupancyIntervalMs: 10,
    maxConcurrentJoins: 1,
    maxHistoryPage: 1000,
    secret: 's'.repeat(32)
  }
  const before = { ...opts }

  const resolved = resolveOptions(opts)
  const { adapter, ...rest } = resolved
  const { store: _store, ...expected } = before
  t.strictSame(rest, { ...expected, rateLimit: null, signals: new Set(expected.signals), signalRate: null, allowedOrigins: null, presenceGraceMs: 1000, metaSchema: null })
  t.type(adapter, LocalAdapter, 'the in-process adapter, over the given store')
  t.equal(resolved.identify, identify)
  t.equal(resolved.authorize, authorize)
  t.equal(resolved.refresh, refresh)
  t.equal(resolved.onMessage, onMessage)
  t.not(resolved, opts)
  t.strictSame(opts, before, 'the user object is unchanged')
  t.notOk(Object.isFrozen(opts), 'the user object is not frozen')
})

t.test('signals are copied: changing the given list later changes nothing', async (t) => {
  const names = ['typing']
  const resolved = resolveOptions({ signals: names, signalRate: { messages: 2, intervalMs: 500, burst: 3 } })
  names.push('late')
  t.strictSame(resolved.signals, new Set(['typing']))
  t.strictSame(resolved.signalRate, { messages: 2, intervalMs: 500, burst: 3 })
  t.strictSame(resolveOptions({ signals: [] }).signals, new Set(), 'none: signals are off')
})

t.test('allowedOrigins and rateLimit are normalized', async (t) => {
  const list = resolveOptions({ allowedOrigins: ['https://Example.com:443/path', 'http://localhost:3000'] }).allowedOrigins
  t.strictSame(list, new Set(['https://example.com', 'http://localhost:3000']))
  const decide = (): boolean => true
  t.equal(resolveOptions({ allowedOrigins: decide }).allowedOrigins, decide)
  const limit = { messages: 5, intervalMs: 100, burst: 7 }
  const resolved = resolveOptions({ rateLimit: limit }).rateLimit
  t.strictSame(resolved, limit)
  t.not(resolved, limit, 'a copy')
  t.ok(Object.isFrozen(resolved))
})

t.test('defaultRoom null means no auto-join', async (t) => {
  t.equal(resolveOptions({ defaultRoom: null }).defaultRoom, null)
})

t.test('upper bounds are inclusive', async (t) => {
  const resolved = resolveOptions({ historySize: 100_000, maxMessageLength: 1_000_000, maxRoomsPerClient: 10_000 })
  t.equal(resolved.historySize, 100_000)
  t.equal(resolved.maxMessageLength, 1_000_000)
  t.equal(resolved.maxRoomsPerClient, 10_000)
})

t.test('every invalid value throws FST_CHAT_INVALID_OPTION naming the option', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['path', { path: 'chat' }],
    ['path', { path: '' }],
    ['path', { path: 5 }],
    ['echo', { echo: 'yes' }],
    ['echo', { echo: 1 }],
    ['defaultRoom', { defaultRoom: 'has space' }],
    ['defaultRoom', { defaultRoom: '' }],
    ['defaultRoom', { defaultRoom: 'a'.repeat(65) }],
    ['defaultRoom', { defaultRoom: 5 }],
    ['historySize', { historySize: -1 }],
    ['historySize', { historySize: 1.5 }],
    ['historySize', { historySize: 100_001 }],
    ['historySize', { historySize: Number.NaN }],
    ['historySize', { historySize: Number.POSITIVE_INFINITY }],
    ['historySize', { historySize: '100' }],
    ['maxMessageLength', { maxMessageLength: 0 }],
    ['maxMessageLength', { maxMessageLength: 1_000_001 }],
    ['maxMessageLength', { maxMessageLength: 2.5 }],
    ['maxRoomsPerClient', { maxRoomsPerClient: 0 }],
    ['maxRoomsPerClient', { maxRoomsPerClient: 10_001 }],
    ['editWindowMs', { editWindowMs: -1 }],
    ['editWindowMs', { editWindowMs: 1.5 }],
    ['editWindowMs', { editWindowMs: '60000' }],
    ['identify', { identify: 'fn' }],
    ['identify', { identify: {} }],
    ['onMessage', { onMessage: true }],
    ['store', { store: {} }],
    ['store', { store: 'redis' }],
    ['store', { store: storeWithout('append') }],
    ['store', { store: storeWithout('recent') }],
    ['store', { store: storeWithout('since') }],
    ['store', { store: storeWithout('entry') }],
    ['store', { store: storeWithout('epoch') }],
    ['serveClient', { serveClient: 'no' }],
    ['maxPayload', { maxPayload: 15 }],
    ['maxPayload', { maxPayload: 100 * 1024 * 1024 + 1 }],
    ['heartbeatInterval', { heartbeatInterval: 5 }],
    ['heartbeatInterval', { heartbeatInterval: -1 }],
    ['heartbeatInterval', { heartbeatInterval: 2 ** 31 }],
    ['maxBufferedBytes', { maxBufferedBytes: 0 }],
    ['rateLimit', { rateLimit: true }],
    ['rateLimit', { rateLimit: null }],
    ['rateLimit.messages', { rateLimit: { messages: 0, intervalMs: 1000, burst: 1 } }],
    ['rateLimit.intervalMs', { rateLimit: { messages: 1, intervalMs: 0, burst: 1 } }],
    ['rateLimit.burst', { rateLimit: { messages: 1, intervalMs: 1000 } }],
    ['signals', { signals: 'typing' }],
    ['signals', { signals: null }],
    ['signals', { signals: ['typing', 5] }],
    ['signals', { signals: ['has space'] }],
    ['signals', { signals: [''] }],
    ['signals', { signals: ['x'.repeat(33)] }],
    ['signals', { signals: Array.from({ length: 65 }, (_, i) => `s${i}`) }],
    ['signalRate', { signalRate: true }],
    ['signalRate', { signalRate: null }],
    ['signalRate.messages', { signalRate: { messages: 0, intervalMs: 1000, burst: 1 } }],
    ['signalRate.burst', { signalRate: { messages: 1, intervalMs: 1000 } }],
    ['signalRate.rate', { signalRate: { rate: 1, messages: 1, intervalMs: 1000, burst: 1 } }],
    ['maxConnections', { maxConnections: 0 }],
    ['maxConnectionsPerIp', { maxConnectionsPerIp: -1 }],
    ['allowedOrigins', { allowedOrigins: 'https://example.com' }],
    ['allowedOrigins', { allowedOrigins: ['example.com'] }],
    ['allowedOrigins', { allowedOrigins: ['null'] }],
    ['allowedOrigins', { allowedOrigins: [5] }],
    ['closeTimeout', { closeTimeout: -1 }],
    ['presenceGraceMs', { presenceGraceMs: -1 }],
    ['maxConcurrentJoins', { maxConcurrentJoins: 0 }],
    ['maxConcurrentJoins', { maxConcurrentJoins: 1.5 }],
    ['maxConcurrentJoins', { maxConcurrentJoins: '256' }],
    ['maxHistoryPage', { maxHistoryPage: 0 }],
    ['maxHistoryPage', { maxHistoryPage: 1001 }],
    ['maxHistoryPage', { maxHistoryPage: 2.5 }],
    ['maxHistoryPage', { maxHistoryPage: '100' }],
    ['secret', { secret: 's'.repeat(31) }],
    ['secret', { secret: '' }],
    ['secret', { secret: 42 }],
    ['secret', { secret: null }],
    ['secret', { secret: Buffer.alloc(32) }],
    ['adapter', { adapter: 'redis' }],
    ['adapter', { adapter: null }],
    ['adapter.broker', { adapter: { start () {}, close () {} } }],
    ['adapter.broker', { adapter: { start () {}, close () {}, broker: {}, presence: {} } }],
    ['store', { store: new MemoryStore(), adapter: new LocalAdapter(new MemoryStore(), true) }],
    ['rateLimit.intervalMS', { rateLimit: { messages: 1, intervalMS: 1000, burst: 1 } }],
    ['historysize', { historysize: 10 }],
    ['options', null],
    ['options', 'path=/chat'],
    ['options', 5]
  ]
  for (const [name, opts] of cases) {
    t.throws(() => resolveOptions(loose(opts)), {
      code: CODE,
      message: new RegExp(`option "${name}"`)
    }, `${name}: ${String(JSON.stringify(opts))}`)
  }
})

t.test('an unknown key is refused, naming the known key it is closest to', async (t) => {
  t.throws(() => resolveOptions(loose({ maxMesageLength: 100 })), {
    code: CODE,
    message: 'fastify-chat: option "maxMesageLength" is not a known option (did you mean "maxMessageLength"?)'
  })
  t.throws(() => resolveOptions(loose({ EchoOn: true })), {
    code: CODE,
    message: 'fastify-chat: option "EchoOn" is not a known option'
  }, 'no suggestion when nothing is close')
  t.throws(() => resolveOptions(loose({ rateLimit: { messages: 1, intervalMs: 10, brust: 2 } })), {
    message: /option "rateLimit.brust" is not a known option \(did you mean "rateLimit.burst"\?\)/
  })
  // Fastify reads these register options itself; the plugin sees them too.
  t.doesNotThrow(() => resolveOptions(loose({ prefix: '/x', logLevel: 'warn', logSerializers: {} })))
})

t.test('messages quote string values, so "100" and 100 read apart', async (t) => {
  t.throws(() => resolveOptions(loose({ historySize: '100' })), { message: /got "100"$/ })
  t.throws(() => resolveOptions(loose({ historySize: 100_001 })), { message: /got 100001$/ })
  t.throws(() => resolveOptions(loose({ echo: 'yes' })), { message: /got "yes"$/ })
  t.throws(() => resolveOptions(loose({ path: 5 })), { message: /got 5$/ })
  t.throws(() => resolveOptions(loose({ identify: 'fn' })), { message: /got "fn"$/ })
})

t.test('the error is a TypeError built by FST_CHAT_INVALID_OPTION', async (t) => {
  try {
    resolveOptions(loose({ echo: 'yes' }))
    t.fail('resolveOptions should have thrown')
  } catch (err) {
    t.type(err, FST_CHAT_INVALID_OPTION)
    t.type(err, TypeError)
  }
})

t.test('a store missing only the optional close() is accepted', async (t) => {
  const store = storeWithout('close')
  t.type(resolveOptions(loose({ store })).adapter, LocalAdapter)
})

t.test('an invalid option makes app.ready() reject', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(fastifyChat, { historySize: -1 })
  // ready() returns the instance, a PromiseLike; t.rejects wants a real promise.
  await t.rejects(async () => { await app.ready() }, { code: CODE })
})

t.test('a secret too short to be safe fails register, saying how long it was', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(fastifyChat, { secret: 'short' })
  await t.rejects(async () => { await app.ready() }, { code: CODE, message: /option "secret" must be a string of at least 32 characters, got 5 characters/ })
})
