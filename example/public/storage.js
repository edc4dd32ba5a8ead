/* global btoa, crypto, localStorage, sessionStorage */
// What the page keeps in the browser. Storage may be full or blocked (a
// private window, say): the page then starts afresh each time, nothing worse.

const NAME_KEY = 'fastify-chat.name'
// This browser's secret: every tab sends it, so they are all one user (see keyedIdentify in server.ts).
const USER_KEY = 'fastify-chat.key'
// Per tab, so a reload is in the same rooms while a new tab starts in the default one.
const SESSION_KEY = 'fastify-chat.session'

/** What a reload should bring back: { resume, rooms, direct, current }; {} when there is nothing. */
export function loadSession () {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY))
    return saved !== null && typeof saved === 'object' ? saved : {}
  } catch {
    return {}
  }
}

export function saveSession (state) {
  try {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(state))
  } catch {}
}

/** This browser's user key, made on its first visit; null when storage is unavailable (the page is then a guest). */
export function userKey () {
  try {
    let key = localStorage.getItem(USER_KEY)
    if (key === null) {
      const bytes = crypto.getRandomValues(new Uint8Array(24))
      key = btoa(String.fromCharCode(...bytes)).replaceAll('+', '-').replaceAll('/', '_')
      localStorage.setItem(USER_KEY, key)
    }
    return key
  } catch {
    return null
  }
}

/** The name last taken by the server, for the next visit. */
export function savedName () {
  try {
    return localStorage.getItem(NAME_KEY) ?? undefined
  } catch {
    return undefined
  }
}

export function saveName (name) {
  try {
    localStorage.setItem(NAME_KEY, name)
  } catch {}
}
