// The browser client as served: client.js and the modules it imports, each
// under `<path>/client/`, and nothing else from the disk.
import { readdir, readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import fastifyChat from '../index.js'
import type { FastifyChatOptions } from '../index.js'

// The tests run index.ts from source, which serves the compiled client under dist/.
const built = new URL('../dist/lib/', import.meta.url)
const modules = (await readdir(new URL('client/', built))).filter((name) => name.endsWith('.js'))

async function build (t: Test, opts: FastifyChatOptions = {}): Promise<ReturnType<typeof Fastify>> {
  const app = Fastify()
  await app.register(fastifyChat, opts)
  t.teardown(() => app.close())
  return app
}

/** The relative module specifiers of a script's static imports and re-exports. */
function imports (code: string): string[] {
  return [...code.matchAll(/^(?:import|export)\s[^'"]*?\sfrom\s+'([^']+)'/gm)].map((m) => m[1] as string)
}

t.test('every compiled client module is served like client.js, without its source-map comment', async (t) => {
  t.ok(modules.includes('roster.js') && modules.includes('link.js'), 'the client is built')
  const app = await build(t)
  for (const name of modules) {
    const res = await app.inject(`/chat/client/${name}`)
    t.equal(res.statusCode, 200, name)
    t.equal(res.headers['content-type'], 'text/javascript; charset=utf-8', name)
    t.equal(res.headers['cache-control'], 'no-cache', name)
    const file = await readFile(new URL(`client/${name}`, built), 'utf8')
    t.match(file, /sourceMappingURL/, `${name} on disk links its map`)
    t.equal(res.body, file.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'), `${name} is the file, with no link to a map that is not served`)
  }
})

t.test('everything client.js imports, and they import, is served: a page loads the whole graph', async (t) => {
  const app = await build(t)
  const origin = 'http://chat.test'
  const seen = new Set<string>()
  const queue = [`${origin}/chat/client.js`]
  // The graph is finite: each module is fetched once.
  while (queue.length > 0 && seen.size < 100) {
    const url = queue.shift() as string
    if (seen.has(url)) continue
    seen.add(url)
    const res = await app.inject(new URL(url).pathname)
    t.equal(res.statusCode, 200, url)
    for (const specifier of imports(res.body)) {
      t.match(specifier, /^\.\.?\//, `${url} imports ${specifier} by a relative path`)
      const target = new URL(specifier, url).href
      t.ok(target.startsWith(`${origin}/chat/client`), `${url} imports ${specifier} from the client's own modules, never server code`)
      queue.push(target)
    }
  }
  t.ok(seen.size > 5, `client.js imports its modules (${seen.size} fetched)`)
})

t.test('only the compiled modules: unknown names, other files and traversal get 404', async (t) => {
  const app = await build(t)
  const refused = [
    '/chat/client/nope.js',
    '/chat/client/roster.ts',
    '/chat/client/roster.js.map',
    '/chat/client/roster.d.ts',
    '/chat/client/ROSTER.js',
    '/chat/client/..%2Fclient.js',
    '/chat/client/..%2F..%2Findex.js',
    '/chat/client/%2E%2E%2Fprotocol%2Fwire.js',
    '/chat/client/..%5Cindex.js',
    '/chat/client/..',
    '/chat/client/',
    '/chat/client/roster.js%00.js',
    '/chat/protocol/wire.js',
    '/chat/index.js'
  ]
  for (const url of refused) t.equal((await app.inject(url)).statusCode, 404, url)
})

t.test('follows the path option', async (t) => {
  const app = await build(t, { path: '/talk/' })
  t.equal((await app.inject('/talk/client.js')).statusCode, 200)
  t.equal((await app.inject('/talk/client/roster.js')).statusCode, 200)
  t.equal((await app.inject('/chat/client/roster.js')).statusCode, 404)
})

t.test('serveClient: false serves none of them', async (t) => {
  const app = await build(t, { serveClient: false })
  t.equal((await app.inject('/chat/client.js')).statusCode, 404)
  for (const name of modules) t.equal((await app.inject(`/chat/client/${name}`)).statusCode, 404, name)
})

t.test('the compiled plugin (as installed) serves the modules beside it', async (t) => {
  const compiled = await import(String(new URL('../dist/index.js', import.meta.url))) as { default: typeof fastifyChat }
  const app = Fastify()
  await app.register(compiled.default)
  t.teardown(() => app.close())
  for (const name of ['client.js', ...modules.map((name) => `client/${name}`)]) {
    const res = await app.inject(`/chat/${name}`)
    t.equal(res.statusCode, 200, name)
    t.notMatch(res.body, /sourceMappingURL/, name)
  }
  t.equal((await app.inject('/chat/client/..%2Findex.js')).statusCode, 404)
})
