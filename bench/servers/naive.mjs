// The naive loop: @fastify/websocket and a Set of sockets, every message sent
// to every socket (the sender included), as in the classic broadcast example.
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import { listenOptions, serve } from './control.mjs'

const app = Fastify({ logger: false })
await app.register(fastifyWebsocket)

const clients = new Set()
app.get('/chat', { websocket: true }, (socket) => {
  clients.add(socket)
  socket.on('close', () => clients.delete(socket))
  socket.on('message', (data) => {
    const msg = data.toString()
    for (const c of clients) c.send(msg)
  })
})

await app.listen(listenOptions())
serve(app.server.address().port, { stats: () => ({ open: clients.size }) })
