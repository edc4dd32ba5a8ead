// Waiting on the typed client's events, for tests over real sockets.
import type { ChatConnection, ChatEvents } from '../../lib/client.js'
import { within } from './chat.js'

/** The next `event` whose payload passes `predicate`; start waiting before you act. */
export async function waitFor<E extends keyof ChatEvents> (
  conn: ChatConnection, event: E, predicate: (payload: ChatEvents[E]) => boolean = () => true
): Promise<ChatEvents[E]> {
  let off = (): void => {}
  const seen = new Promise<ChatEvents[E]>((resolve) => {
    off = conn.on(event, (payload) => { if (predicate(payload)) resolve(payload) })
  })
  try {
    return await within(seen, 3000, `a ${event} event`)
  } finally {
    off()
  }
}
