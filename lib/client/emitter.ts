/** A tiny typed emitter: the same in browsers and Node, and nothing to subclass. */
export class Emitter<Events> {
  #listeners = new Map<keyof Events, Set<(payload: never) => void>>()

  on<E extends keyof Events> (event: E, listener: (payload: Events[E]) => void): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, set = new Set())
    set.add(listener)
    return () => this.off(event, listener)
  }

  off<E extends keyof Events> (event: E, listener: (payload: Events[E]) => void): void {
    this.#listeners.get(event)?.delete(listener)
  }

  emit<E extends keyof Events> (event: E, payload: Events[E]): void {
    // A copy, so listeners may unsubscribe while being called.
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        (listener as (payload: Events[E]) => void)(payload)
      } catch (err) {
        // Like EventTarget: report it without breaking the other listeners or our state.
        queueMicrotask(() => { throw err })
      }
    }
  }
}
