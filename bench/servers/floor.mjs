// The floor under fastify-chat's CPU per delivery: its broadcast with every
// per-recipient check taken out. Each message is wrapped in an envelope of
// the same shape and size as fastify-chat's, framed once, and written to
// the stream under every socket: no state, membership or buffered-bytes
// check, no batching, no bound on a slow reader. Not a server to deploy:
// a measure of what one write per delivery costs on this machine.
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import { serve } from './control.mjs'

const app = Fastify({ logger: false })
await app.register(fastifyWebsocket)

// What a fastify-chat bench client looks like in a message: a 16-character
// id and a name like the load generator's (lg<pid>-<index>).
const from = { id: 'AAAAAAAAAAAAAAAA', name: 'lg123456-1234' }
let offset = 0
const sockets = new Set()
app.get('/chat', { websocket: true }, (socket) => {
  sockets.add(socket._socket)
  socket.on('close', () => sockets.delete(socket._socket))
  socket.on('message', (data) => {
    const text = JSON.stringify({ type: 'message', room: 'bench', offset: ++offset, ts: Date.now(), from, text: data.toString() })
    const length = Buffer.byteLength(text)
    const header = length < 126 ? 2 : 4
    const frame = Buffer.allocUnsafe(header + length)
    frame[0] = 0x81
    if (header === 2) frame[1] = length
    else {
      frame[1] = 126
      frame.writeUInt16BE(length, 2)
    }
    frame.write(text, header)
    for (const stream of sockets) stream.write(frame)
  })
})

await app.listen({ host: '127.0.0.1', port: 0 })
serve(app.server.address().port, { stats: () => ({ open: sockets.size }) })
