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

  await writeFile(join(dir, 'app.js'), `
    import Fastify from 'fastify'
    import WebSocket from 'ws'
    import fastifyChat, { FST_CHAT_INVALID_OPTION } from 'fastify-chat'
    const app = Fastify()
    await app.register(fastifyChat, { path: '/ws' })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const ws = new WebSocket('ws://127.0.0.1:' + app.server.address().port + '/ws?name=consumer')
    const frames = []
    ws.on('message', async (data) => {
      frames.push(JSON.parse(data).type)
      if (frames.length === 2) ws.send('hello')
      if (frames.length === 3) {
        console.log(JSON.stringify({ frames, errors: typeof FST_CHAT_INVALID_OPTION }))
        await app.close()
      }
    })
    setTimeout(() => { console.error('timed out'); process.exit(1) }, 10000).unref()
  `)
  const out = await run('node', ['app.js'], { cwd: dir, timeout: 20_000 })
  t.same(JSON.parse(out.stdout), { frames: ['welcome', 'joined', 'message'], errors: 'function' })
})
