import { Ajv } from 'ajv'
import type { ErrorObject } from 'ajv'
import { FST_CHAT_INVALID_OPTION } from '../errors.js'
import { checkMeta } from '../protocol/meta.js'
import { shown } from '../validate.js'

/** Checks a message's `meta` against the app's schema: why it fails, or `null` when it passes. */
export type MetaSchema = (meta: Record<string, unknown>) => string | null

// Error paths hold the client's own keys: keep what we echo back short.
const MAX_PATH_LENGTH = 128

function pointerSegment (key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1')
}

/** The failing path (a JSON Pointer into `meta`) and what is wrong there. */
function describe (error: ErrorObject): string {
  let path = error.instancePath
  // Ajv points at the object that has the extra property; the property itself is what the sender must fix.
  const extra: unknown = error.params.additionalProperty ?? error.params.unevaluatedProperty
  if (typeof extra === 'string') path += '/' + pointerSegment(extra)
  if (path.length > MAX_PATH_LENGTH) path = path.slice(0, MAX_PATH_LENGTH) + '…'
  // Ajv writes a message for every error unless told `messages: false`.
  const what = error.message as string
  return path === '' ? `"meta" breaks the schema: ${what}` : `"meta" breaks the schema at ${path}: ${what}`
}

/**
 * Compiles the `metaSchema` option once, at register; a schema Ajv refuses
 * fails with FST_CHAT_INVALID_OPTION. Ajv's strict mode is on, so unknown
 * keywords and formats are refused rather than ignored. Fastify's own Ajv
 * options strip additional properties, fill in defaults and coerce types;
 * here nothing is changed: a property the schema forbids is refused, and
 * the meta stored is the one that was checked.
 */
export function compileMetaSchema (schema: unknown): MetaSchema | null {
  if (schema === undefined) return null
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new FST_CHAT_INVALID_OPTION('metaSchema', `must be a JSON Schema object, got ${shown(schema)}`)
  }
  const ajv = new Ajv({ removeAdditional: false, useDefaults: false, coerceTypes: false, allErrors: false })
  let validate
  try {
    validate = ajv.compile(schema)
  } catch (err) {
    throw new FST_CHAT_INVALID_OPTION('metaSchema', `is not a schema Ajv can compile: ${(err as Error).message}`)
  }
  // An async schema answers with a promise, and every message would wait on it.
  if ((validate as { $async?: unknown }).$async === true) throw new FST_CHAT_INVALID_OPTION('metaSchema', 'must not be an $async schema')
  return (meta) => {
    if (validate(meta) as boolean) return null
    return describe((validate.errors as ErrorObject[])[0])
  }
}

/**
 * Checks a `meta` that the app gave (`onMessage`, `app.chat.broadcast`)
 * like a sender's, and returns a copy through JSON: every store then keeps
 * the same thing (a Date becomes its string), and the app's object can
 * change no stored message.
 */
export function checkAppMeta (meta: unknown, maxBytes: number, schema: MetaSchema | null): { ok: true, meta: Record<string, unknown> } | { ok: false, message: string } {
  const checked = checkMeta(meta, maxBytes)
  if (!checked.ok) return checked
  const copy = JSON.parse(checked.json) as Record<string, unknown>
  // The copy is what is stored, so it is what the schema must pass (a Date is a string by then).
  const problem = schema?.(copy) ?? null
  return problem === null ? { ok: true, meta: copy } : { ok: false, message: problem }
}
