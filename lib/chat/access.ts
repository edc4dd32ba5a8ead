import type { AuthorizeRequest, ResolvedOptions } from '../options.js'
import type { ChatMessage } from '../protocol/wire.js'
import type { Connection } from '../transport/connection.js'

/**
 * Asks the app's `authorize` whether a client may join, publish, open a
 * direct room or moderate another user's message. Only `true` allows; anything else refuses, and so does a
 * throw or a rejection, which is logged with the request's id. Without
 * `authorize`, everything is allowed. The answer is a plain boolean when it
 * can be, so the common synchronous case costs a message no extra await.
 */
export class Access {
  readonly #authorize: ResolvedOptions['authorize']

  constructor (authorize: ResolvedOptions['authorize']) {
    this.#authorize = authorize
  }

  allows (conn: Connection, action: AuthorizeRequest['action'], room: string, to?: string, message?: ChatMessage): boolean | Promise<boolean> {
    const authorize = this.#authorize
    // Without authorize, every action but moderating others' messages is allowed.
    if (authorize === null) return action !== 'moderate'
    const request: AuthorizeRequest = to === undefined ? { action, room, client: conn.view } : { action, room, client: conn.view, to }
    if (message !== undefined) request.message = { ...message }
    let answer: boolean | Promise<boolean>
    try {
      answer = authorize(request)
    } catch (err) {
      return refused(conn, request, err)
    }
    if (typeof (answer as Promise<boolean> | null)?.then !== 'function') return answer === true
    return Promise.resolve(answer).then((allowed) => allowed === true, (err: unknown) => refused(conn, request, err))
  }
}

function refused (conn: Connection, request: AuthorizeRequest, err: unknown): false {
  conn.request.log.error({ err, action: request.action, room: request.room }, 'fastify-chat: authorize threw, refusing')
  return false
}
