/* global fetch */
// The staff routes of the example server (/staff/*), which check the staff
// token a page was opened with (?staff=) in `Authorization: Bearer`.

/** Whether the server takes `token`: the page shows its moderation tools only then. */
export async function isStaff (token) {
  const response = await fetch('/staff/check', { headers: { authorization: `Bearer ${token}` } })
  return response.ok
}

/** Removes a user from a room ('remove', { room, userId }) or disconnects them ('kick', { userId }); throws with the server's reason. */
export async function moderate (token, action, body, reason) {
  const response = await fetch(`/staff/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(reason === '' ? body : { ...body, reason })
  })
  if (response.ok) return
  const answer = await response.json().catch(() => ({}))
  throw new Error(answer.message ?? response.statusText)
}
