import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile, access } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const root = new URL('..', import.meta.url).pathname

// A consumer app installs the tarball `npm pack` makes, as a user would, and
// chats through it: proves `exports`, `files` and the dependencies are right.
t.test('the packed tarball installs and works in another app', { timeout: 240_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fastify-chat-consumer-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: root })
  const tarball = join(dir, stdout.trim().split('\n').at(-1) as string)

  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, 'fastify@5'], { cwd: dir, timeout: 180_000 })
  await access(join(dir, 'node_modules/fastify-chat/dist/index.d.ts'))

  // The published types stand alone: a TypeScript app without the optional
  // peers (ioredis, better-sqlite3) type-checks with skipLibCheck off.
  await writeFile(join(dir, 'check.ts'), `
    import Fastify from 'fastify'
    import fastifyChat, { redisAdapter, sqliteStore } from 'fastify-chat'
    const app = Fastify()
    await app.register(fastifyChat, { adapter: redisAdapter({ url: 'redis://127.0.0.1:6379' }) })
    await app.register(fastifyChat, { store: sqliteStore({ path: 'chat.db' }) })
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
  const tsc = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: dir, timeout: 120_000 })
    .then(() => '', (err: { stdout?: string }) => err.stdout ?? String(err))
  t.equal(tsc, '', 'tsc reports nothing')

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
  const out = await run('node', ['app.js'], { cwd: dir, timeout: 20_000 })
  t.same(JSON.parse(out.stdout), { text: 'hello', from: 'consumer', code: 'FST_CHAT_INVALID_OPTION' })
})
