import { randomBytes } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import WebSocket from 'ws'
import type { ChatClient } from './options.js'
import type { ChatMessage, ErrorCode, ServerFrame } from './wire.js'

/** 12 random bytes, base64url: unique across processes without coordination. */
export function randomId (): string {
  return randomBytes(12).toString('base64url')
}

/** One chat socket and what the hub knows about it. */
export class Connection implements ChatClient {
  /** Unique per socket, even when two sockets share a user id. */
  readonly key = randomId()
  readonly id: string
  name: string
  readonly rooms = new Set<string>()
  readonly request: FastifyRequest
  readonly socket: WebSocket
  /** Rooms whose join is replaying history, with the live messages held back meanwhile. */
  readonly pending = new Map<string, ChatMessage[]>()
  /** Frames received but not yet handled; handled one at a time to keep their order. */
  queued = 0
  #chain: Promise<void> = Promise.resolve()

  constructor (socket: WebSocket, request: FastifyRequest, id: string, name: string) {
    this.socket = socket
    this.request = request
    this.id = id
    this.name = name
  }

  get open (): boolean {
    return this.socket.readyState === WebSocket.OPEN
  }

  /** The room a message without `room` goes to. */
  get firstRoom (): string | undefined {
    return this.rooms.values().next().value
  }

  /** Runs `task` after every task queued before it; a task never rejects the chain. */
  enqueue (task: () => Promise<void>): void {
    this.queued++
    this.#chain = this.#chain.then(task).finally(() => { this.queued-- })
  }

  send (frame: ServerFrame): void {
    this.sendRaw(JSON.stringify(frame))
  }

  /** Writes already-encoded data; a socket that fails to take it is dropped. */
  sendRaw (data: string): void {
    if (this.socket.readyState !== WebSocket.OPEN) return
    try {
      this.socket.send(data)
    } catch (err) {
      this.request.log.warn({ err }, 'fastify-chat: send failed, dropping socket')
      this.socket.terminate()
    }
  }

  sendError (code: ErrorCode, message: string, cid?: string): void {
    this.send(cid === undefined ? { type: 'error', code, message } : { type: 'error', code, message, cid })
  }
}
