import type { ErrorCode } from './wire.js'

/**
 * Deepest nesting of objects and arrays in a message's `meta`, the object
 * itself counting as 1. Far more than any sane payload needs, and far below
 * the depth at which JSON.stringify runs out of stack (a few thousand): a
 * frame of `[[[[…` that JSON.parse takes must not crash its encoding later.
 */
export const MAX_META_DEPTH = 32

/** The verdict on a `meta`: its JSON when it can be one, else the error to answer with. */
export type MetaCheck =
  | { ok: true, json: string }
  | { ok: false, code: ErrorCode, message: string }

// Also ends on a cycle, which an app's object may have.
function withinDepth (value: object, depth: number): boolean {
  if (depth > MAX_META_DEPTH) return false
  for (const item of Object.values(value)) {
    if (typeof item === 'object' && item !== null && !withinDepth(item, depth + 1)) return false
  }
  return true
}

/** UTF-8 bytes of `json` exceed `max`; computed only when the UTF-16 length does not settle it (a code unit is 1 to 3 bytes). */
function longerThan (json: string, max: number): boolean {
  if (json.length > max) return true
  return json.length * 3 > max && Buffer.byteLength(json) > max
}

/**
 * Checks a message's `meta`, the one rule for clients, `onMessage` and
 * `app.chat`: a JSON object of at most `maxBytes` (UTF-8) once serialised.
 * The schema, when there is one, is checked apart (see meta-schema.ts).
 */
export function checkMeta (meta: unknown, maxBytes: number): MetaCheck {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    return { ok: false, code: 'invalid_message', message: '"meta" must be a JSON object' }
  }
  if (!withinDepth(meta, 1)) {
    return { ok: false, code: 'invalid_message', message: `"meta" nests objects and arrays deeper than ${MAX_META_DEPTH} levels` }
  }
  let json: string
  try {
    json = JSON.stringify(meta)
  } catch {
    // Only an app's object gets here (a BigInt, a throwing toJSON): what a client sends was JSON.
    return { ok: false, code: 'invalid_message', message: '"meta" cannot be serialised as JSON' }
  }
  if (longerThan(json, maxBytes)) {
    return { ok: false, code: 'too_large', message: `"meta" is larger than ${maxBytes} bytes as JSON` }
  }
  return { ok: true, json }
}
