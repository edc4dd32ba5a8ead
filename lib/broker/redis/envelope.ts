import type { ChatMessage, SignalFrame } from '../../protocol/wire.js'
import type { ControlCommand } from '../control.js'
import type { PresenceEvent } from '../presence.js'

/**
 * What travels on a room's channel: a stored message with the room's epoch
 * and the connection to skip (written by the PUBLISH script), or a presence
 * event (written by the presence scripts; by the RESTORE script with `s`,
 * the server that re-announces its user, or `v`, the presence version that
 * restored it). One
 * channel per room keeps a room's messages and presence events in one order.
 * The control channel carries moderation commands (`c`), with the server
 * that sent them (`s`), which has run them already, when (`at`, its clock)
 * and their control log entry (`i`). A signal (`s`), with the connection to
 * skip (`x`), is published by a plain (S)PUBLISH: it is in no stream.
 * A read position that moved (`r`)
 * travels on the room's channel too, with the user (`u`), the new offset
 * (`o`), the server that moved it (`s`, which told its own sockets) and the
 * socket to skip (`x`).
 */
export type Envelope =
  | { t: 'm', e: string, x: string | null, m: ChatMessage }
  | { t: 'p', e: PresenceEvent, s?: string, v?: string }
  | { t: 'c', i?: string, s: string, at?: number, c: ControlCommand }
  | { t: 's', x: string | null, s: SignalFrame }
  | { t: 'r', r: string, u: string, o: number, s: string, x: string | null }

/** The envelope in a channel payload; `null` for anything else (only our scripts publish there, but it is Redis). */
export function parseEnvelope (payload: string): Envelope | null {
  let envelope: Envelope
  try {
    envelope = JSON.parse(payload) as Envelope
  } catch {
    return null
  }
  if (typeof envelope !== 'object' || envelope === null || !['m', 'p', 'c', 's', 'r'].includes(envelope.t)) return null
  return envelope
}
