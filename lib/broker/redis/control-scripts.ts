import { script } from './lua.js'

// Control. Every command is kept in one stream, the control log (capped
// near `maxLen` entries, one field `c` holding the envelope's JSON), and
// published on the control channel with its entry id spliced in as `i`. A
// server whose subscriber was away reads the log from the last id it saw.
//
// The control channel is one channel that every server must hear, not one
// per room. On a cluster it stays on plain PUBLISH/SUBSCRIBE: a plain
// PUBLISH reaches the subscribers of every node, so each server listens on
// whichever node it likes, while a script may only SPUBLISH to a channel in
// the slot of its keys, which the log's key is not. The price is that each
// command crosses the cluster bus to every node, as against the room
// channels, which carry the bulk of the traffic and stay on their shard. On
// one server it goes as the rooms go (see RedisConnections.controlPubSub).

/**
 * Logs and publishes one command, together: a server that did not get it
 * live finds it in the log.
 *
 * KEYS[1] logKey: the control log.
 * ARGV[1] payload: the envelope's JSON, an object with at least one key.
 * ARGV[2] publish: 'PUBLISH' or 'SPUBLISH' (one server with sharded pub/sub).
 * ARGV[3] channel: the control channel.
 * ARGV[4] maxLen: about how many entries the log keeps.
 *
 * Returns the entry id. Publishes the envelope with `"i":<id>` first.
 */
export const CONTROL = script<string>()('fastifyChatControl', ['logKey'], ['payload', 'publish', 'channel', 'maxLen'], `
local id = redis.call('XADD', logKey, 'MAXLEN', '~', maxLen, '*', 'c', payload)
redis.call(publish, channel, '{"i":"' .. id .. '",' .. string.sub(payload, 2))
return id
`)

/**
 * Where the control log stands, and what it holds after an id.
 *
 * KEYS[1] logKey: the control log.
 * ARGV[1] after: an entry id, or '' for none (only the ends are read).
 * ARGV[2] limit: the most entries returned.
 *
 * Returns {oldest id or '', newest id or '', id1, payload1, id2, payload2, ...}.
 */
export const CONTROL_SINCE = script<string[]>()('fastifyChatControlSince', ['logKey'], ['after', 'limit'], `
local oldest = redis.call('XRANGE', logKey, '-', '+', 'COUNT', 1)[1]
local newest = redis.call('XREVRANGE', logKey, '+', '-', 'COUNT', 1)[1]
local out = { oldest and oldest[1] or '', newest and newest[1] or '' }
if after ~= '' then
  for _, entry in ipairs(redis.call('XRANGE', logKey, '(' .. after, '+', 'COUNT', limit)) do
    out[#out + 1] = entry[1]
    out[#out + 1] = entry[2][2]
  end
end
return out
`)
