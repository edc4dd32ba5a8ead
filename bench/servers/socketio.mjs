// Socket.IO on a plain http server, WebSocket transport only, every message
// emitted to every socket (the sender included).
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { serve } from './control.mjs'

const http = createServer()
const io = new Server(http, { transports: ['websocket'], serveClient: false })
io.on('connection', (socket) => {
  socket.on('m', (p) => io.emit('m', p))
})

http.listen(0, '127.0.0.1', () => {
  serve(http.address().port, { stats: () => ({ open: io.engine.clientsCount }) })
})
