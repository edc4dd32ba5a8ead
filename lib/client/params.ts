/** Query parameters the app's `params` option gives for one connection. */
export type Params = Record<string, string>

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}

/**
 * Calls the app's `params` and hands what it gives to `dial`, or calls `fail`
 * when it throws, rejects or takes more than `timeoutMs`: a `params` that
 * never settles would otherwise leave the client waiting for good. Returns
 * a function that cancels the wait (neither is called then); what resolves
 * past the wait is dropped.
 */
export function askParams (params: () => Params | Promise<Params>, timeoutMs: number, dial: (params: Params) => void, fail: () => void): () => void {
  let got
  try {
    got = params()
  } catch {
    fail()
    return () => {}
  }
  if (!isThenable(got)) {
    dial(got)
    return () => {}
  }
  let settled = false
  const settle = (then?: () => void): void => {
    if (settled) return
    settled = true
    clearTimeout(timer)
    then?.()
  }
  const timer = setTimeout(() => settle(fail), timeoutMs)
  Promise.resolve(got).then((resolved) => settle(() => dial(resolved)), () => settle(fail))
  return () => settle()
}
