import type { FastifyBaseLogger } from 'fastify'
import type { Broker, BrokerNode } from './broker.js'
import type { Control, ControlNode } from './control.js'
import type { Presence, PresenceNode } from './presence.js'

/** This server, as a broker, presence and control see it. */
export type AdapterNode = BrokerNode & PresenceNode & ControlNode

/** What the plugin hands an adapter when it starts. */
export interface AdapterContext {
  node: AdapterNode
  /** Messages kept and replayed per room. */
  historySize: number
  log: FastifyBaseLogger
}

/**
 * The back end of one chat: a {@link Broker} for messages and history, a
 * {@link Presence} for who is where and a {@link Control} for moderation and
 * direct rooms, started and closed together. The
 * in-process one serves a single server; `redisAdapter()` serves several.
 * Bring your own by implementing this interface.
 */
export interface Adapter {
  readonly broker: Broker
  readonly presence: Presence
  readonly control: Control
  /** Connects; called once when the plugin registers. A failure fails `register`. */
  start (context: AdapterContext): Promise<void> | void
  /** A secret every server of the chat shares, for resume tokens; without it each server makes its own. */
  secret? (): Promise<string>
  /** Stops; called once on `app.close()`. Closes only what the adapter made itself. */
  close (): Promise<void> | void
}
