import type { WelcomeFrame } from '../protocol/wire.js'

/** Who this client is to the server, as its last `welcome` said; the name and resume token ride in each connect's URL. */
export class Identity {
  id: string | null = null
  clientId: string | null = null
  expiresAt: number | null = null
  name: string | null
  // From the `resume` option, then from each welcome: sent on every connect so the server keeps our id.
  resume: string | null

  constructor (name: string | null, resume: string | null) {
    this.name = name
    this.resume = resume
  }

  welcome (frame: WelcomeFrame): void {
    this.id = frame.id
    this.clientId = frame.clientId
    this.expiresAt = frame.expiresAt ?? null
    this.name = frame.name
    this.resume = frame.resume ?? null
  }
}
