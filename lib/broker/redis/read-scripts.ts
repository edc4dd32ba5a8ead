import { script } from './lua.js'

// Read positions. Each user's are one hash (room -> offset), apart from the
// rooms' keys, so a mark is two scripts: one on the user's hash moves the
// position, one in the room's slot tells the other servers, and only when
// the user has a member in the room on another server than this one.

/**
 * Moves one read position: to `offset` when it is further than the kept
 * one, or when the kept one is beyond `latest` (the room's history was lost
 * since). A position of 0 is never written: no field means 0.
 *
 * KEYS[1] readsKey: the user's hash of positions.
 * ARGV[1] room. ARGV[2] offset: the new position, at most `latest`. ARGV[3] latest: the room's latest offset.
 *
 * Returns the new position, or -1 when it did not move.
 */
export const MARK_READ = script<number>()('fastifyChatMarkRead', ['readsKey'], ['room', 'offset', 'latest'], `
local current = tonumber(redis.call('HGET', readsKey, room) or '0')
local n = tonumber(offset)
if n == current or (n < current and current <= tonumber(latest)) then return -1 end
if n == 0 then redis.call('HDEL', readsKey, room) else redis.call('HSET', readsKey, room, n) end
return n
`)

/**
 * Tells the room's other servers that a user's read position moved, when
 * the user is in the room on more than one server (the room's presence
 * counts them); otherwise the server that moved it told its sockets, and
 * there is nobody else to tell.
 *
 * KEYS[1] refsKey: the room's user id -> servers hash.
 * ARGV[1] user: the user's id. ARGV[2] publish: 'SPUBLISH' or 'PUBLISH'.
 * ARGV[3] channel: the room's channel. ARGV[4] envelope: the `r` envelope's JSON.
 *
 * Returns 1 when it published, else 0.
 */
export const SHARE_READ = script<number>()('fastifyChatShareRead', ['refsKey'], ['user', 'publish', 'channel', 'envelope'], `
if tonumber(redis.call('HGET', refsKey, user) or '0') < 2 then return 0 end
redis.call(publish, channel, envelope)
return 1
`)

/**
 * One user's read positions.
 *
 * KEYS[1] readsKey: the user's hash of positions.
 * ARGV[1] room: one room, or '' for every room.
 *
 * Returns the room's position (0 for none) for one room, else {room1, offset1, room2, offset2, ...}.
 */
export const READ_POSITIONS = script<number | string[]>()('fastifyChatReadPositions', ['readsKey'], ['room'], `
if room ~= '' then return tonumber(redis.call('HGET', readsKey, room) or '0') end
return redis.call('HGETALL', readsKey)
`)
