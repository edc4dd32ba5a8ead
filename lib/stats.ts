import diagnostics from 'node:diagnostics_channel'

/** Why an upgrade was refused. */
export type RefusalReason = 'origin' | 'unauthorized' | 'forbidden' | 'server_full' | 'ip_full' | 'closing'

/**
 * Why a frame or a socket was dropped. `signal_limited`: a signal over its
 * sender's `signalRate`; `signal_shed`: a signal not written to one
 * recipient that lagged, or not written at all while the server was congested.
 */
export type DropReason = 'rate_limited' | 'overloaded' | 'slow_consumer' | 'too_large' | 'invalid' | 'dead_peer' | 'signal_limited' | 'signal_shed'

/** Counters since the plugin registered, returned by `app.chat.stats()`. */
export interface ChatStats {
  /** Open chat sockets now. */
  open: number
  connections: {
    accepted: number
    refused: Record<RefusalReason, number>
  }
  /** Frames received from clients. */
  messagesIn: number
  /** Message frames written to sockets. */
  deliveriesOut: number
  drops: Record<DropReason, number>
}

/** `node:diagnostics_channel` channels the plugin publishes on. */
export const channels = Object.freeze({
  /** `{ event: 'accepted' | 'refused' | 'closed', reason?, ip, code? }` */
  connection: diagnostics.channel('fastify-chat:connection'),
  /** `{ room, offset, from }` for every stored message. */
  message: diagnostics.channel('fastify-chat:message'),
  /** `{ reason, ip?, room?, buffered? }` for every drop; `buffered` is the socket's queued bytes for `slow_consumer`; no `ip` for a signal shed whole. */
  drop: diagnostics.channel('fastify-chat:drop'),
  /** `{ event: 'down' | 'up', role, err? }` when an adapter loses or regains its backend (Redis). */
  adapter: diagnostics.channel('fastify-chat:adapter')
})

/**
 * Whoever an event is about: a request, whose `ip` is read only when a
 * channel has subscribers (Node caches the peer address on every socket
 * asked for it, which costs each idle socket memory).
 */
export interface Peer {
  readonly ip: string
}

/** Counts what happens and mirrors it on the diagnostics channels (only when someone listens). */
export class Stats {
  accepted = 0
  refused: Record<RefusalReason, number> = { origin: 0, unauthorized: 0, forbidden: 0, server_full: 0, ip_full: 0, closing: 0 }
  messagesIn = 0
  deliveriesOut = 0
  drops: Record<DropReason, number> = { rate_limited: 0, overloaded: 0, slow_consumer: 0, too_large: 0, invalid: 0, dead_peer: 0, signal_limited: 0, signal_shed: 0 }

  accept (from: Peer): void {
    this.accepted++
    if (channels.connection.hasSubscribers) channels.connection.publish({ event: 'accepted', ip: from.ip })
  }

  refuse (reason: RefusalReason, from: Peer): void {
    this.refused[reason]++
    if (channels.connection.hasSubscribers) channels.connection.publish({ event: 'refused', reason, ip: from.ip })
  }

  closed (from: Peer, code: number): void {
    if (channels.connection.hasSubscribers) channels.connection.publish({ event: 'closed', ip: from.ip, code })
  }

  /** `from` is null for a frame with no one sender here (a signal shed whole, which may come from another server). */
  drop (reason: DropReason, from: Peer | null, room?: string, buffered?: number): void {
    this.drops[reason]++
    if (channels.drop.hasSubscribers) channels.drop.publish({ reason, ip: from?.ip, room, buffered })
  }

  snapshot (open: number): ChatStats {
    return {
      open,
      connections: { accepted: this.accepted, refused: { ...this.refused } },
      messagesIn: this.messagesIn,
      deliveriesOut: this.deliveriesOut,
      drops: { ...this.drops }
    }
  }
}
