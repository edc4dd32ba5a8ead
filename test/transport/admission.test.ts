import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import WebSocket from 'ws'
import fastifyChat from '../../index.js'
import type { FastifyChatOptions } from '../../index.js'
import { Client, within } from '../helpers/chat.js'

// Self-signed for 127.0.0.1 and localhost; clients trust it as their CA.
const cert = readFileSync(new URL('../fixtures/tls/cert.pem', import.meta.url))
const key = readFileSync(new URL('../fixtures/tls/key.pem', import.meta.url))

const WAIT_MS = 3000

interface Served {
  app: FastifyInstance
  /** `ws://` or `wss://`, host and port. */
  url: string
  /** `127.0.0.1:<port>`, as clients send it in Host. */
  host: string
}

/** An app with the plugin on a free loopback port, over TLS when `secure`, closed when the test ends. */
async function serve (t: Test, { secure = false, trustProxy = false, chat = {} }: { secure?: boolean, trustProxy?: boolean, chat?: FastifyChatOptions } = {}): Promise<Served> {
  const app = (secure ? Fastify({ https: { key, cert }, trustProxy }) : Fastify({ trustProxy })) as unknown as FastifyInstance
  await app.register(fastifyChat, { presenceGraceMs: 0, ...chat })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const host = `127.0.0.1:${port}`
  return { app, url: `${secure ? 'wss' : 'ws'}://${host}`, host }
}

/**
 * What an upgrade with `headers` gets: the HTTP status of a refusal, or
 * 'welcome' once an accepted socket has said so.
 */
async function answer (url: string, headers: Record<string, string>): Promise<number | 'welcome'> {
  const ws = new WebSocket(`${url}/chat`, { headers, ca: cert })
  // Listening from the start: welcome may come in the handshake's own packet.
  const client = new Client(ws)
  try {
    return await within(Promise.race([
      once(ws, 'unexpected-response').then(([, response]) => (response as { statusCode: number }).statusCode),
      once(ws, 'open').then(async () => (await client.expect('welcome')).type)
    ]), WAIT_MS, `an answer to Origin ${headers.origin ?? '(none)'}`)
  } finally {
    ws.terminate()
  }
}

t.test('over TLS, an http: Origin on the same host and port is refused with 403; the https: one is accepted', async (t) => {
  const { app, url, host } = await serve(t, { secure: true })
  t.equal(await answer(url, { origin: `http://${host}` }), 403, 'http:')
  t.equal(await answer(url, { origin: `HTTP://${host}` }), 403, 'http: in capitals')
  t.equal(await answer(url, { origin: `https://${host}` }), 'welcome', 'https:')
  t.equal(await answer(url, {}), 'welcome', 'no Origin (not a browser)')
  t.equal(await answer(url, { origin: `https://${host.replace(/:\d+$/, ':1')}` }), 403, 'https: on another port')
  t.equal(await answer(url, { origin: 'https://evil.example' }), 403, 'https: on another host')
  t.equal(app.chat.stats().connections.refused.origin, 4)
})

t.test('over TLS with a Host on the default port: https: passes with or without :443, http: does not', async (t) => {
  const { url } = await serve(t, { secure: true })
  // As behind a TLS port-forward: the client names the site, without a port.
  const site = { host: 'chat.example' }
  t.equal(await answer(url, { ...site, origin: 'https://chat.example' }), 'welcome')
  t.equal(await answer(url, { ...site, origin: 'https://chat.example:443' }), 'welcome', 'the default port written out')
  t.equal(await answer(url, { ...site, origin: 'http://chat.example' }), 403)
  t.equal(await answer(url, { ...site, origin: 'http://chat.example:443' }), 403, 'http: on port 443 is still http:')
})

t.test('behind trustProxy, X-Forwarded-Proto: https refuses an http: Origin with 403 and accepts the https: one', async (t) => {
  const { url, host } = await serve(t, { trustProxy: true })
  const proxied = { 'x-forwarded-proto': 'https' }
  t.equal(await answer(url, { ...proxied, origin: `http://${host}` }), 403, 'http:')
  t.equal(await answer(url, { ...proxied, origin: `https://${host}` }), 'welcome', 'https:')
  t.equal(await answer(url, { 'x-forwarded-proto': 'http', origin: `http://${host}` }), 'welcome', 'a proxy that says http')
  t.equal(await answer(url, { origin: `http://${host}` }), 'welcome', 'no X-Forwarded-Proto: plain HTTP')
})

t.test('without trustProxy, X-Forwarded-Proto is not believed: over plain HTTP an http: Origin passes', async (t) => {
  const { url, host } = await serve(t)
  t.equal(await answer(url, { 'x-forwarded-proto': 'https', origin: `http://${host}` }), 'welcome')
})

t.test('over plain HTTP both http: and https: Origins of the same host pass, since a TLS proxy may sit in front', async (t) => {
  const { url, host } = await serve(t)
  t.equal(await answer(url, { origin: `http://${host}` }), 'welcome', 'http:')
  t.equal(await answer(url, { origin: `https://${host}` }), 'welcome', 'https:')
  t.equal(await answer(url, { origin: `https://${host.replace(/:\d+$/, ':1')}` }), 403, 'another port still refused')
})

t.test('allowedOrigins carries its own schemes: over TLS a listed http: Origin passes, an unlisted one does not', async (t) => {
  const listed = await serve(t, { secure: true, chat: { allowedOrigins: ['http://app.example'] } })
  t.equal(await answer(listed.url, { origin: 'http://app.example' }), 'welcome', 'listed http:')
  t.equal(await answer(listed.url, { origin: 'https://app.example' }), 403, 'the same host with another scheme is another origin')
  t.equal(await answer(listed.url, { origin: `https://${listed.host}` }), 403, 'the list replaces the same-host rule')

  const decided = await serve(t, { secure: true, chat: { allowedOrigins: (origin) => origin.startsWith('http://') } })
  t.equal(await answer(decided.url, { origin: `http://${decided.host}` }), 'welcome', 'a function that accepts http: is obeyed')
  t.equal(await answer(decided.url, { origin: `https://${decided.host}` }), 403)
})
