import type { HistoryStore } from '../stores/history-store.js'
import type { Adapter, AdapterContext } from './adapter.js'
import { LocalBroker } from './local-broker.js'
import { LocalControl } from './local-control.js'
import { LocalPresence } from './local-presence.js'

/** The in-process back end of a single server: history in a store, presence and direct rooms in memory. */
export class LocalAdapter implements Adapter {
  readonly broker: LocalBroker
  readonly presence = new LocalPresence()
  readonly control = new LocalControl()
  readonly #store: HistoryStore
  readonly #ownsStore: boolean
  /** The store's resume secret, when it keeps one (the SQLite file); without it, each process makes its own. */
  readonly secret?: () => Promise<string>

  /** `ownsStore`: the plugin made the store, so closing the adapter closes it; a store handed in is the user's. */
  constructor (store: HistoryStore, ownsStore: boolean) {
    this.#store = store
    this.#ownsStore = ownsStore
    this.broker = new LocalBroker(store)
    if (typeof store.secret === 'function') this.secret = async () => await (store.secret as () => Promise<string>).call(store)
  }

  async start (context: AdapterContext): Promise<void> {
    await this.#store.init?.()
    this.broker.start(context.node)
    this.presence.start(context.node)
  }

  async close (): Promise<void> {
    this.broker.close()
    this.presence.close()
    this.control.close()
    if (this.#ownsStore) await this.#store.close?.()
  }
}
