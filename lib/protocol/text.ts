import type { ErrorCode } from './wire.js'
import { MAX_NAME_LENGTH, ROOM_PATTERN } from './wire.js'

// C0/C1 controls, bidi marks, overrides and isolates (which let a name display
// as something it is not), line separators, invisible zero-width marks, and
// lone surrogates.
const UNSAFE_NAME_CHARS = /[\p{Cc}\p{Cs}\u061C\u200B\u200E\u200F\u2028-\u202E\u2066-\u2069\uFEFF]/gu
// Anything but Unicode's White_Space and Default_Ignorable_Code_Point (zero-width
// spaces and joiners, fillers, soft hyphens...): a text without one shows as nothing.
const VISIBLE = /[^\p{White_Space}\p{Default_Ignorable_Code_Point}]/u
// In a `u` regex a surrogate pair is one code point, so this finds only the
// unpaired ones: JSON's "\ud800" makes them, and they are not Unicode (stores
// and UTF-8 encoders turn them into U+FFFD).
const LONE_SURROGATE = /\p{Cs}/u

/** What a bad room name is told, wherever it is checked. */
export const ROOM_RULE = `room names match ${ROOM_PATTERN.source}`

/** Unicode code points in `text`, counting a surrogate pair once. */
export function codePointLength (text: string): number {
  let count = text.length
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        count--
        i++
      }
    }
  }
  return count
}

/** Whether `text` has at most `max` code points; cheap when the UTF-16 length already settles it. */
export function fitsLength (text: string, max: number): boolean {
  return text.length <= max || codePointLength(text) <= max
}

export function isRoomName (room: unknown): room is string {
  return typeof room === 'string' && ROOM_PATTERN.test(room)
}

/** Whether `text` is valid Unicode: no surrogate without its other half. */
export function isWellFormed (text: string): boolean {
  return !LONE_SURROGATE.test(text)
}

/** Trims and strips control characters; `null` when nothing visible is left or it is too long. */
export function sanitizeName (name: unknown): string | null {
  if (typeof name !== 'string') return null
  const clean = name.replace(UNSAFE_NAME_CHARS, '').trim()
  if (!VISIBLE.test(clean) || !fitsLength(clean, MAX_NAME_LENGTH)) return null
  return clean
}

/** Why `text` cannot be a message text, or `null` when it can: the one rule for clients, hooks and `app.chat`. */
export function textProblem (text: unknown, maxLength: number): { code: ErrorCode, message: string } | null {
  if (typeof text !== 'string') return { code: 'invalid_message', message: '"text" must be a string' }
  if (!isWellFormed(text)) return { code: 'invalid_message', message: '"text" has a lone surrogate (it is not valid Unicode)' }
  if (!VISIBLE.test(text)) return { code: 'empty_text', message: 'message text is empty or only invisible characters' }
  if (!fitsLength(text, maxLength)) return { code: 'text_too_long', message: `message text is longer than ${maxLength} characters` }
  return null
}
