/**
 * Resolves with how long it took once `check` holds, trying every 20 ms;
 * rejects after `ms`. Only for state that no event announces (what Redis
 * holds, say): anything else is awaited as an event.
 */
export async function eventually (check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = Date.now()
  for (let tries = 0; tries < 5000; tries++) {
    if (await check().catch(() => false)) return Date.now() - start
    if (Date.now() - start > ms) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`not within ${ms} ms: ${what}`)
}
