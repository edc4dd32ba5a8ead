// Imported by package name, as users do: the self-reference resolves through
// package.json "exports" to dist/index.d.ts, so `npm run build` must run first.
import Fastify from 'fastify'
import type { FastifyRequest } from 'fastify'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import { Cluster, Redis } from 'ioredis'
import fastifyChat, { CloseCode, FST_CHAT_INVALID_OPTION, FST_CHAT_STORE_UNAVAILABLE, MemoryStore, fastifyChat as namedFastifyChat, redisAdapter, sqliteStore } from 'fastify-chat'
import type {
  Adapter,
  AdapterContext,
  AppendResult,
  Broker,
  BrokerNode,
  Control,
  ControlCommand,
  PageRequest,
  Presence,
  PresenceNode,
  PresenceOptions,
  PresencePage,
  PublishResult,
  Chat,
  ChatClient,
  ChatMessage,
  ClientFrame,
  FastifyChatOptions,
  HistoryPage,
  HistoryStore,
  Identity,
  NewMessage,
  OlderPage,
  OutgoingMessage,
  ServerFrame,
  User
} from 'fastify-chat'

const app = Fastify()

// Valid registrations compile.
app.register(fastifyChat)
app.register(fastifyChat, {})
app.register(namedFastifyChat, { path: '/chat' })
app.register(fastifyChat, {
  path: '/ws',
  echo: false,
  identify: async (req) => ({ id: 'u1', name: String(req.headers['x-name'] ?? 'guest') }),
  onMessage: (m, c) => ({ ...m, text: `${c.name}: ${m.text.trim()}` })
})
app.register(fastifyChat, {
  defaultRoom: null,
  historySize: 0,
  maxMessageLength: 500,
  maxRoomsPerClient: 5,
  serveClient: false,
  store: new MemoryStore({ size: 10, maxRooms: 100 }),
  identify: () => false,
  onMessage: async () => false
})
app.register(fastifyChat, { identify: (req) => req.headers.authorization === undefined ? false : {} })
app.register(fastifyChat, { onMessage: () => undefined })
app.register(fastifyChat, { onMessage: (message) => { console.log(message.text) } })
app.register(fastifyChat, { onMessage: () => true })

// The callbacks see the right types.
app.register(fastifyChat, {
  identify: (req) => {
    expectType<FastifyRequest>(req)
    return { id: 'u1' }
  },
  onMessage: (message, client) => {
    expectType<OutgoingMessage>(message)
    expectType<ChatClient>(client)
    expectType<string>(client.id)
    expectType<ReadonlySet<string>>(client.rooms)
    expectType<FastifyRequest>(client.request)
    expectType<unknown>(client.data)
    // The view is read-only, and the socket is out of reach.
    expectError(client.name = 'x')
    expectError(client.socket)
    expectError(client.close())
    return message
  }
})
app.register(fastifyChat, { identify: () => ({ id: 'u1', data: { role: 'staff', teams: ['a'] } }) })

// Wrong option types are errors.
expectError(app.register(fastifyChat, { echo: 'yes' }))
expectError(app.register(fastifyChat, { historySize: '100' }))
expectError(app.register(fastifyChat, { path: 42 }))
expectError(app.register(fastifyChat, { defaultRoom: 7 }))
expectError(app.register(fastifyChat, { serveClient: 1 }))
expectError(app.register(fastifyChat, { store: {} }))
expectError(app.register(fastifyChat, { identify: 'u1' }))
expectError(app.register(fastifyChat, { identify: () => 'u1' }))
expectError(app.register(fastifyChat, { onMessage: () => 'drop' }))

// Structured messages: meta on messages, its size and schema options.
app.register(fastifyChat, {
  maxMetaBytes: 4096,
  metaSchema: { type: 'object', properties: { replyTo: { type: 'integer' } }, additionalProperties: false },
  onMessage: (message) => ({ ...message, meta: { ...message.meta, seen: true } })
})
expectError(app.register(fastifyChat, { maxMetaBytes: '2048' }))
expectError(app.register(fastifyChat, { metaSchema: 'object' }))
expectError(app.register(fastifyChat, { onMessage: (message) => ({ ...message, meta: ['not', 'an', 'object'] }) }))
expectType<Promise<ChatMessage>>(app.chat.broadcast('lobby', 'reply', { meta: { replyTo: 3 } }))
expectType<Record<string, unknown> | undefined>(({} as ChatMessage).meta)
expectError(app.register(fastifyChat, { unknownOption: true }))

expectAssignable<FastifyChatOptions>({ path: '/chat', echo: true })
expectNotAssignable<FastifyChatOptions>({ echo: 'yes' })
expectAssignable<Identity>({})
expectNotAssignable<Identity>({ id: 5 })

// app.chat is typed.
expectType<Chat>(app.chat)
expectType<Promise<ChatMessage>>(app.chat.broadcast('lobby', 'hello'))
expectType<Promise<ChatMessage>>(app.chat.broadcast('lobby', 'hello', { from: { id: 'bot', name: 'Bot' } }))
expectType<Promise<ChatMessage[]>>(app.chat.history('lobby', { since: 3, limit: 10 }))
expectType<Promise<ChatMessage[]>>(app.chat.history('lobby'))
expectType<Promise<OlderPage>>(app.chat.history('lobby', { before: 100, limit: 20 }))
expectType<Promise<OlderPage>>(app.chat.history('lobby', { before: 100 }))
expectError(app.chat.history('lobby', { before: 100, since: 3 }))
expectError(app.chat.history('lobby', { before: '100' }))
expectType<Promise<Record<string, number>>>(app.chat.unread('alice'))
expectType<string[]>(app.chat.rooms())
expectType<number>(app.chat.size)
expectError(app.chat.broadcast('lobby'))
expectError(app.chat.broadcast('lobby', 42))
expectError(app.chat.size = 3)

// Access control: authorize, session expiry and refresh, moderation.
app.register(fastifyChat, {
  identify: () => ({ id: 'u1', data: { staff: true }, expiresAt: Date.now() + 60_000 }),
  authorize: ({ action, room, client, to, message }) => {
    expectType<'join' | 'publish' | 'signal' | 'direct' | 'history' | 'moderate'>(action)
    expectType<string>(room)
    expectType<string>(client.clientId)
    expectType<string | undefined>(to)
    expectType<ChatMessage | undefined>(message)
    return (client.data as { staff: boolean }).staff
  },
  refresh: async (token, client) => token === client.id ? { expiresAt: Date.now() + 60_000 } : false
})
app.register(fastifyChat, { authorize: async () => true })
expectError(app.register(fastifyChat, { authorize: () => 'yes' }))
expectError(app.register(fastifyChat, { refresh: () => ({ expiresAt: 'later' }) }))
expectError(app.register(fastifyChat, { identify: () => ({ expiresAt: 'tomorrow' }) }))
expectType<Promise<number>>(app.chat.disconnect({ userId: 'u1' }, { reason: 'banned' }))
expectType<Promise<number>>(app.chat.disconnect({ clientId: 'c1' }))
expectError(app.chat.disconnect({ userId: 'u1', clientId: 'c1' }))
expectError(app.chat.disconnect('u1'))
expectType<Promise<number>>(app.chat.removeFromRoom('dev', 'u1', { reason: 'off topic' }))
expectType<Promise<number>>(app.chat.addToRoom('dev', 'u1'))
expectType<4000>(CloseCode.DISCONNECTED)
expectType<4001>(CloseCode.SESSION_EXPIRED)

// Errors can be matched on their code.
expectType<'FST_CHAT_INVALID_OPTION'>(new FST_CHAT_INVALID_OPTION('path', 'is wrong').code)

// Frames are discriminated unions.
declare const frame: ServerFrame
if (frame.type === 'message') expectType<number>(frame.offset)
if (frame.type === 'error') expectType<string | undefined>(frame.cid)
expectAssignable<ClientFrame>({ type: 'join', room: 'dev', since: { epoch: 'e', offset: 3 } })
expectAssignable<ClientFrame>({ type: 'join', with: 'bob', since: { epoch: 'e', offset: 3 } })
expectNotAssignable<ClientFrame>({ type: 'join', with: 'bob', room: 'dev' })
expectAssignable<ClientFrame>({ type: 'refresh', token: 't' })
if (frame.type === 'joined') expectType<User | undefined>(frame.with)
if (frame.type === 'welcome') expectType<string>(frame.clientId)
expectNotAssignable<ClientFrame>({ type: 'shout' })

// A user class can implement HistoryStore and be passed as the store.
class ArrayStore implements HistoryStore {
  #messages: ChatMessage[] = []

  async append (message: NewMessage): Promise<AppendResult> {
    const stored = { ...message, offset: this.#messages.length + 1 }
    this.#messages.push(stored)
    return { message: stored, duplicate: false }
  }

  async recent (room: string, limit: number): Promise<HistoryPage> {
    const messages = this.#messages.filter((m) => m.room === room).slice(-limit)
    return { epoch: 'e1', offset: this.#messages.length, messages }
  }

  async since (room: string, offset: number): Promise<HistoryPage | null> {
    const messages = this.#messages.filter((m) => m.room === room && m.offset > offset)
    return { epoch: 'e1', offset: this.#messages.length, messages }
  }

  async entry (room: string, offset: number): Promise<ChatMessage | null> {
    return this.#messages.find((m) => m.room === room && m.offset === offset) ?? null
  }

  async epoch (): Promise<string> {
    return 'e1'
  }
}
app.register(fastifyChat, { store: new ArrayStore() })
expectAssignable<HistoryStore>(new MemoryStore())

// A user class can implement Adapter: a Broker for messages and history,
// and a Presence for who is where.
class LoopbackBroker implements Broker {
  node: BrokerNode | null = null
  readonly #store: HistoryStore = new MemoryStore()

  async publish (message: NewMessage, exclude: string | null): Promise<PublishResult> {
    const result = await this.#store.append(message)
    if (!result.duplicate) this.node?.deliver(result.message, exclude)
    return result
  }

  async subscribe (): Promise<void> {}
  async unsubscribe (): Promise<void> {}
  async recent (room: string, limit: number): Promise<HistoryPage> { return await this.#store.recent(room, limit) }
  async since (room: string, offset: number): Promise<HistoryPage | null> { return await this.#store.since(room, offset) }
  async entry (room: string, offset: number): Promise<ChatMessage | null> { return await this.#store.entry(room, offset) }
}
class NobodyPresence implements Presence {
  node: PresenceNode | null = null
  async join (room: string, user: User): Promise<void> { this.node?.presence({ room, event: 'join', user, count: 0 }) }
  async leave (room: string, user: User): Promise<void> { this.node?.presence({ room, event: 'leave', user, count: 0 }) }
  async rename (room: string, user: User, previous: string): Promise<void> { this.node?.presence({ room, event: 'rename', user, previous, count: 0 }) }
  async page (_room: string, request: PageRequest): Promise<PresencePage> { return request.after === undefined ? { users: [], count: 0 } : { users: [], count: 0, next: request.after } }
  async count (): Promise<number> { return 0 }
}
class SoloControl implements Control {
  readonly #pairs = new Map<string, User[]>()
  async send (command: ControlCommand): Promise<void> { if (command.type === 'disconnect') expectType<string>(command.reason) }
  async pair (room: string, user: User, otherId: string): Promise<void> { this.#pairs.set(room, [user, { id: otherId, name: otherId }]) }
  async pairOf (room: string): Promise<User[] | null> { return this.#pairs.get(room) ?? null }
}
class LoopbackAdapter implements Adapter {
  readonly broker = new LoopbackBroker()
  readonly presence = new NobodyPresence()
  readonly control = new SoloControl()
  start (context: AdapterContext): void {
    this.broker.node = context.node
    this.presence.node = context.node
  }

  close (): void {
    this.broker.node = null
  }
}
app.register(fastifyChat, { adapter: new LoopbackAdapter() })
expectError(app.register(fastifyChat, { adapter: { broker: new LoopbackBroker(), start () {}, close () {} } }))
expectError(app.register(fastifyChat, { adapter: { broker: new LoopbackBroker(), presence: new NobodyPresence(), start () {}, close () {} } }))
app.register(fastifyChat, { adapter: redisAdapter({ url: 'redis://127.0.0.1:6379', prefix: 'chat' }) })
expectError(redisAdapter({ url: 6379 }))
app.register(fastifyChat, { adapter: redisAdapter({ client: new Redis('redis://127.0.0.1:6379') }) })
expectError(redisAdapter({ client: {} }))
expectError(redisAdapter({ url: 'redis://127.0.0.1:6379', client: new Redis() }))
app.register(fastifyChat, { adapter: redisAdapter({ client: new Cluster([{ host: '127.0.0.1', port: 7000 }]) }) })
app.register(fastifyChat, { adapter: redisAdapter({ cluster: [{ host: '127.0.0.1', port: 7000 }], shardedPubSub: false }) })
expectError(redisAdapter({ cluster: [{ host: '127.0.0.1' }] }))
expectType<Promise<PresencePage>>(app.chat.presence('lobby'))
expectType<Promise<PresencePage>>(app.chat.presence('lobby', { limit: 50, after: 'cursor' }))
expectAssignable<PresenceOptions>({ limit: 10 })
expectError(app.chat.presence('lobby', { limit: '10' }))
expectError(app.chat.presence('lobby', { after: 5 }))
expectType<Promise<number>>(app.chat.occupancy('lobby'))
expectType<string | undefined>((await app.chat.presence('lobby')).next)
expectNotAssignable<Presence>({ join: async () => {}, leave: async () => {}, rename: async () => {}, list: async () => [] })
expectAssignable<Adapter>(new LoopbackAdapter())

// Limits (issue: bad clients, load and faults).
app.register(fastifyChat, {
  maxPayload: 1024,
  heartbeatInterval: 0,
  maxBufferedBytes: 1 << 20,
  rateLimit: { messages: 5, intervalMs: 1000, burst: 10 },
  maxConnections: 100,
  maxConnectionsPerIp: 4,
  allowedOrigins: ['https://app.example'],
  closeTimeout: 500
})
app.register(fastifyChat, { rateLimit: false, allowedOrigins: async (origin: string) => origin.endsWith('.example') })
expectError(app.register(fastifyChat, { rateLimit: { messages: 5 } }))
expectError(app.register(fastifyChat, { allowedOrigins: 'https://app.example' }))
expectType<number>(app.chat.stats().drops.slow_consumer)

// Signals (issue 17).
app.register(fastifyChat, { signals: ['typing', 'recording'], signalRate: { messages: 2, intervalMs: 1000, burst: 2 } })
app.register(fastifyChat, { signals: [], signalRate: false })
expectError(app.register(fastifyChat, { signals: 'typing' }))
expectError(app.register(fastifyChat, { signalRate: { messages: 5 } }))
expectType<number>(app.chat.stats().drops.signal_limited)
expectType<number>(app.chat.stats().drops.signal_shed)
expectAssignable<ClientFrame>({ type: 'signal', room: 'lobby', name: 'typing', data: { draft: true } })
expectAssignable<ServerFrame>({ type: 'signal', room: 'lobby', name: 'typing', from: { id: 'a', name: 'alice' } })
expectNotAssignable<ServerFrame>({ type: 'signal', room: 'lobby', name: 'typing' })

// Durable history (SQLite).
app.register(fastifyChat, { store: sqliteStore({ path: './data/chat.db', retain: { count: 1000, maxAgeMs: 86_400_000 } }) })
expectError(sqliteStore({ retain: { count: 10 } }))
expectType<'FST_CHAT_STORE_UNAVAILABLE'>(new FST_CHAT_STORE_UNAVAILABLE('path', 'reason').code)

// Edits and deletes: frames of their own, log entries with type and of, and editWindowMs.
app.register(fastifyChat, { editWindowMs: 15 * 60_000 })
expectError(app.register(fastifyChat, { editWindowMs: '15m' }))
expectAssignable<ClientFrame>({ type: 'edit', room: 'lobby', of: 3, text: 'fixed' })
expectAssignable<ClientFrame>({ type: 'delete', room: 'lobby', of: 3, cid: 'd1' })
expectNotAssignable<ClientFrame>({ type: 'delete', room: 'lobby' })
declare const entry: ChatMessage
expectType<'edit' | 'delete' | undefined>(entry.type)
expectType<number | undefined>(entry.of)
