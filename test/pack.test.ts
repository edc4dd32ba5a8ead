import { execFile } from 'node:child_process'
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

// A consumer app installs the tarball `npm pack` makes, with fastify and
// nothing else, then type-checks and runs against it: proves that `files`,
// `exports`, the published types and the dependencies are all a user needs.

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))

// Packing runs the build and the type check covers fastify's and Node's
// types: a minute or two, more on a busy machine than the default 60 s.
t.setTimeout(420_000)

interface LockEntry {
  name?: string
  version?: string
  resolved?: string
  integrity?: string
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  dev?: boolean
  devOptional?: boolean
  peer?: boolean
}
interface Manifest {
  version: string
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  exports: unknown
}
interface Packed { filename: string, integrity: string, files: Array<{ path: string }> }

const npmFlags = ['--no-audit', '--no-fund', '--loglevel=error']
const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Manifest

/** Where Node, resolving `name` from the package at `from`, finds it in a lockfile's tree. */
function locate (packages: Record<string, LockEntry>, from: string, name: string): string | undefined {
  for (let base = from; ; base = base.slice(0, Math.max(0, base.lastIndexOf('/node_modules/')))) {
    const at = `${base === '' ? '' : `${base}/`}node_modules/${name}`
    if (packages[at] !== undefined) return at
    if (base === '') return undefined
  }
}

/**
 * The consumer's lockfile: the tarball plus, from our own lockfile, every
 * package it and fastify reach, at the same paths, so Node resolves each one
 * as in our tree and npm ci installs the versions CI tested.
 */
function consumerLock (ours: Record<string, LockEntry>, packed: Packed, dependencies: Record<string, string>): Record<string, LockEntry> {
  const packages: Record<string, LockEntry> = {
    '': { name: 'consumer', dependencies },
    'node_modules/fastify-chat': {
      version: manifest.version,
      resolved: `file:${packed.filename}`,
      integrity: packed.integrity,
      ...(manifest.dependencies && { dependencies: manifest.dependencies }),
      ...(manifest.peerDependencies && { peerDependencies: manifest.peerDependencies }),
      ...(manifest.peerDependenciesMeta && { peerDependenciesMeta: manifest.peerDependenciesMeta })
    }
  }
  const visit = (from: string, entry: LockEntry): void => {
    // Optional peers stay out, as npm leaves them out: we install ioredis
    // and better-sqlite3 for our own tests, a consumer need not.
    const wanted = [
      ...Object.keys(entry.dependencies ?? {}).map((name) => [name, false] as const),
      ...Object.keys(entry.optionalDependencies ?? {}).map((name) => [name, true] as const),
      ...Object.keys(entry.peerDependencies ?? {})
        .filter((name) => entry.peerDependenciesMeta?.[name]?.optional !== true)
        .map((name) => [name, false] as const)
    ]
    for (const [name, optional] of wanted) {
      const at = locate(packages, from, name) ?? locate(ours, from, name)
      if (at === undefined) {
        if (optional) continue
        throw new Error(`${name}, needed by ${from}, is not in package-lock.json`)
      }
      if (packages[at] !== undefined) continue
      const { dev, devOptional, peer, ...rest } = ours[at] as LockEntry
      packages[at] = rest
      visit(at, rest)
    }
  }
  visit('', packages[''] as LockEntry)
  visit('node_modules/fastify-chat', packages['node_modules/fastify-chat'] as LockEntry)
  return packages
}

t.test('the packed tarball, installed in a consumer app', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fastify-chat-consumer-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // --json keeps the prepack build's output off stdout.
  const packOut = await run('npm', ['pack', '--json', '--pack-destination', dir, ...npmFlags], { cwd: root, timeout: 180_000 })
  const packed = (JSON.parse(packOut.stdout) as Packed[])[0] as Packed

  await t.test('the tarball holds the build, README and LICENSE, and every export target', async (t) => {
    const paths = packed.files.map((f) => f.path)
    const shipped = /^(package\.json|README\.md|CHANGELOG\.md|LICENSE|docs\/[\w-]+\.md|dist\/index\.(js|d\.ts)|dist\/lib\/.+\.(js|d\.ts|js\.map))$/
    t.same(paths.filter((p) => !shipped.test(p)), [], 'no sources, tests, example or bench')
    const targets = JSON.stringify(manifest.exports).match(/:"\.\/[^"]+"/g)?.map((s) => s.slice(4, -1)) ?? []
    t.ok(targets.length > 0)
    t.same(targets.filter((p) => !paths.includes(p)), [], 'every target of `exports` is in the tarball')
  })

  await t.test('installs offline with fastify alone; the optional peers stay out', async (t) => {
    const ours = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }
    const dependencies = { fastify: '^5', 'fastify-chat': `file:${packed.filename}` }
    const packages = consumerLock(ours.packages, packed, dependencies)
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies }))
    await writeFile(join(dir, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }))

    // `npm install` would want full packuments, which npm ci does not cache;
    // npm ci of this lockfile needs only what our own npm ci left in the cache.
    await run('npm', ['ci', '--offline', ...npmFlags], { cwd: dir, timeout: 120_000 }).catch(async (err: { stderr?: string }) => {
      t.comment(`offline install failed, retrying with the registry: ${err.stderr?.trim().split('\n')[0] ?? String(err)}`)
      await run('npm', ['ci', '--prefer-offline', ...npmFlags], { cwd: dir, timeout: 180_000 })
    })

    await access(join(dir, 'node_modules/fastify-chat/dist/index.d.ts'))
    const present = async (name: string): Promise<boolean> => await access(join(dir, 'node_modules', name)).then(() => true, () => false)
    t.equal(await present('fastify'), true)
    for (const name of ['ioredis', 'better-sqlite3', '@fastify/static']) {
      t.equal(await present(name), false, `${name} is not installed`)
    }
  })

  await t.test('a TypeScript app type-checks against the published types', async (t) => {
    // The documented surface only, with skipLibCheck off and without the
    // optional peers: their types must not leak into ours.
    await writeFile(join(dir, 'check.ts'), `
      import Fastify from 'fastify'
      import fastifyChat, { fastifyChat as named, redisAdapter, sqliteStore, MemoryStore, CloseCode, FST_CHAT_INVALID_OPTION } from 'fastify-chat'
      import type { Adapter, ChatMessage, FastifyChatOptions, HistoryStore } from 'fastify-chat'
      import { connect } from 'fastify-chat/client'

      const opts: FastifyChatOptions = { path: '/ws' }
      const adapter: Adapter = redisAdapter({ url: 'redis://127.0.0.1:6379' })
      const store: HistoryStore = sqliteStore({ path: 'chat.db' })
      const memory: HistoryStore = new MemoryStore()
      const app = Fastify()
      await app.register(fastifyChat, opts)
      await app.register(named, { adapter })
      await app.register(fastifyChat, { store })
      await app.register(fastifyChat, { store: memory })

      const sent: ChatMessage = await app.chat.broadcast('lobby', 'hello')
      const history: ChatMessage[] = await app.chat.history('lobby')
      const { users, count, next }: { users: unknown[], count: number, next?: string } = await app.chat.presence('lobby', { limit: 50 })
      const online: number = await app.chat.occupancy('lobby')
      const rooms: string[] = app.chat.rooms()
      const size: number = app.chat.size
      const stats: object = app.chat.stats()
      const closeCodes: readonly number[] = Object.values(CloseCode)
      const err = new FST_CHAT_INVALID_OPTION('path', 'must start with /')
      const code: string = err.code

      const chat = connect('ws://127.0.0.1:3000/ws', { name: 'bot', rooms: ['dev'] })
      const off = chat.on('message', (m) => console.log(m.from.name, m.text))
      off()
      chat.close()
      console.log(sent.text, history.length, users.length, count, next, online, rooms, size, stats, closeCodes, code)
    `)
    await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        module: 'nodenext',
        target: 'es2022',
        types: ['node'],
        typeRoots: [join(root, 'node_modules/@types')]
      },
      files: ['check.ts']
    }))
    const tsc = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: dir, timeout: 240_000 })
      .then(() => '', (err: { stdout?: string }) => err.stdout ?? String(err))
    t.equal(tsc, '', 'tsc reports nothing')
  })

  await t.test('a JavaScript app chats through the installed package', async (t) => {
    await writeFile(join(dir, 'app.js'), `
      import Fastify from 'fastify'
      import WebSocket from 'ws'
      import fastifyChat, { FST_CHAT_INVALID_OPTION } from 'fastify-chat'
      import { connect } from 'fastify-chat/client'
      setTimeout(() => { console.error('timed out'); process.exit(1) }, 10000).unref()
      const app = Fastify()
      await app.register(fastifyChat, { path: '/ws' })
      await app.listen({ port: 0, host: '127.0.0.1' })
      const chat = connect('ws://127.0.0.1:' + app.server.address().port + '/ws', { WebSocket, name: 'consumer' })
      const got = await new Promise((resolve) => {
        chat.on('joined', () => chat.send('hello'))
        chat.on('message', resolve)
      })
      chat.close()
      await app.close()
      const code = new FST_CHAT_INVALID_OPTION('x', 'y').code
      console.log(JSON.stringify({ text: got.text, from: got.from.name, code }))
    `)
    const out = await run(process.execPath, ['app.js'], { cwd: dir, timeout: 20_000 })
    t.same(JSON.parse(out.stdout), { text: 'hello', from: 'consumer', code: 'FST_CHAT_INVALID_OPTION' })
  })
})
