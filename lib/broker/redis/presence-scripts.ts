import { script } from './lua.js'

// Presence, per room (every key below carries the room's hash tag):
// - users: a sorted set of the present users' ids, all scored 0, so that
//   ZRANGEBYLEX pages them in id order and ZCARD counts them;
// - names: a hash of user id -> name;
// - refs: a hash of user id -> on how many servers the user has a member;
// - `<serverPrefix><server id>`: a sorted set (scored 0) of the user ids one
//   server has in the room, its members;
// - servers: a sorted set of the servers with members, scored by when their
//   heartbeat expires (ms since the epoch);
// - digests: a hash of server id -> the sum of its members' digests (see
//   digest()), so that a server can tell its members in Redis are the ones
//   it holds, not only as many;
// - gone: tombstones, a sorted set of the servers a sweep took members from,
//   by when;
// - version: the presence version, `<epoch>:<restores>`.
//
// No script reads a room's users beyond what it adds, removes or pages:
// a join or leave costs O(log n). A dead server's members (its heartbeat
// expired) are swept out a slice at a time, each user whose last member
// that was announced gone once. A server that was only cut off, or whose
// members Redis lost, finds its own set is not what it holds (by count and
// digest) and adds its members back: with a join naming the server (`s`) for those a
// sweep announced gone (it has a tombstone), or carrying the presence
// version (`v`, one restore later than any list handed out since the loss)
// for those Redis lost without anyone being told.

const PRESENCE_KEYS = ['usersKey', 'namesKey', 'refsKey', 'serversKey', 'digestsKey', 'goneKey', 'versionKey', 'serverPrefix'] as const

// Most members one sweep call takes out: a few milliseconds of work at most.
const SWEEP_SLICE = 200

// `publishCmd`, `channel` and `room` are arguments of every script that announces.
const ANNOUNCE = `
local function announce(event, id, name, previous, extra)
  local e = {room = room, event = event, user = {id = id, name = name}, count = redis.call('ZCARD', usersKey)}
  if previous then e.previous = previous end
  local envelope = {t = 'p', e = e}
  if extra then for k, v in pairs(extra) do envelope[k] = v end end
  redis.call(publishCmd, channel, cjson.encode(envelope))
end

-- 28 bits of the id's SHA-1, as memberDigest() in redis-presence.ts computes them.
local function digest(id)
  return tonumber(string.sub(redis.sha1hex(id), 1, 7), 16)
end

-- 0: the server had the member already; 1: a new member of a user present
-- through another server; 2: a user new to the room.
local function add(server, id, name)
  if redis.call('ZADD', serverPrefix .. server, 'NX', 0, id) == 0 then return 0 end
  redis.call('HINCRBY', digestsKey, server, digest(id))
  redis.call('HINCRBY', refsKey, id, 1)
  if redis.call('ZADD', usersKey, 'NX', 0, id) == 0 then return 1 end
  redis.call('HSET', namesKey, id, name)
  return 2
end

-- The user's name when this was their last member (they are gone), else nil.
local function remove(server, id)
  if redis.call('ZREM', serverPrefix .. server, id) == 0 then return nil end
  redis.call('HINCRBY', digestsKey, server, -digest(id))
  if redis.call('HINCRBY', refsKey, id, -1) > 0 then return nil end
  local name = redis.call('HGET', namesKey, id) or id
  redis.call('HDEL', refsKey, id)
  redis.call('HDEL', namesKey, id)
  redis.call('ZREM', usersKey, id)
  return name
end

-- A server with no members left needs no heartbeat.
local function forgetIfEmpty(server)
  if redis.call('EXISTS', serverPrefix .. server) == 0 then
    redis.call('ZREM', serversKey, server)
    redis.call('HDEL', digestsKey, server)
  end
end
`

// Takes out up to a slice of the members of one dead server (heartbeat at
// or below ARGV now), tombstoning it first. Returns how many members it took
// out, and 1 when a dead server is left to sweep (another call's work).
// Tombstones are kept for ARGV goneKeptMs.
const SWEEP_SLICE_FN = ANNOUNCE + `
local function dead()
  return redis.call('ZRANGEBYSCORE', serversKey, '-inf', now, 'LIMIT', 0, 1)[1]
end
local function sweepSlice()
  local server = dead()
  if not server then return 0, 0 end
  local ids = redis.call('ZRANGE', serverPrefix .. server, 0, ${SWEEP_SLICE - 1})
  if #ids > 0 then
    redis.call('ZREMRANGEBYSCORE', goneKey, '-inf', tonumber(now) - tonumber(goneKeptMs))
    redis.call('ZADD', goneKey, now, server)
    redis.call('PEXPIRE', goneKey, goneKeptMs)
    for _, id in ipairs(ids) do
      local name = remove(server, id)
      if name then announce('leave', id, name) end
    end
  end
  forgetIfEmpty(server)
  return #ids, dead() and 1 or 0
end
`

/**
 * Adds one server's member; announces the join unless the user was present
 * already, and keeps the server's heartbeat.
 *
 * ARGV: server, the server's id; userId, name: the user; expiry: the
 * server's new heartbeat; presenceEpoch: the epoch of the presence version,
 * if the room has none; channel, room, publishCmd: where and how to announce.
 *
 * Returns 1 when the join was announced, else 0.
 */
export const JOIN = script<number>()('fastifyChatJoin', PRESENCE_KEYS,
  ['server', 'userId', 'name', 'expiry', 'presenceEpoch', 'channel', 'room', 'publishCmd'], ANNOUNCE + `
redis.call('ZADD', serversKey, expiry, server)
redis.call('SET', versionKey, presenceEpoch .. ':0', 'NX')
if add(server, userId, name) ~= 2 then return 0 end
announce('join', userId, name)
return 1
`)

/**
 * Removes members of one server; announces the leave of each user then
 * gone everywhere.
 *
 * ARGV: server, the server's id; users: the user ids, as a JSON array (one
 * for a leave, a slice on close); channel, room, publishCmd: where and how
 * to announce.
 *
 * Returns how many leaves it announced.
 */
export const LEAVE = script<number>()('fastifyChatLeave', PRESENCE_KEYS,
  ['server', 'users', 'channel', 'room', 'publishCmd'], ANNOUNCE + `
local gone = 0
for _, id in ipairs(cjson.decode(users)) do
  local name = remove(server, id)
  if name then
    announce('leave', id, name)
    gone = gone + 1
  end
end
forgetIfEmpty(server)
return gone
`)

/**
 * Renames a present user and announces it.
 *
 * ARGV: userId, name, previous: the user, their new and old name; channel,
 * room, publishCmd: where and how to announce.
 *
 * Returns 1.
 */
export const RENAME = script<number>()('fastifyChatRename', PRESENCE_KEYS,
  ['userId', 'name', 'previous', 'channel', 'room', 'publishCmd'], ANNOUNCE + `
if redis.call('ZSCORE', usersKey, userId) then redis.call('HSET', namesKey, userId, name) end
announce('rename', userId, name, previous)
return 1
`)

/**
 * One server's heartbeat in a room, and a slice of sweep: keeps the
 * server's members alive, and takes out up to a slice of a dead server's.
 *
 * ARGV: server, the server's id; expiry, its new heartbeat; now, the
 * current time: heartbeats at or below it are dead; goneKeptMs, how long
 * tombstones are kept; channel, room, publishCmd: where and how to announce.
 *
 * Returns {how many members the server has in Redis, 1 when more is left
 * to sweep, the sum of its members' digests as a string}.
 */
export const REFRESH = script<[number, number, string]>()('fastifyChatRefresh', PRESENCE_KEYS,
  ['server', 'expiry', 'now', 'goneKeptMs', 'channel', 'room', 'publishCmd'], SWEEP_SLICE_FN + `
redis.call('ZADD', serversKey, expiry, server)
local _, more = sweepSlice()
return {redis.call('ZCARD', serverPrefix .. server), more, redis.call('HGET', digestsKey, server) or '0'}
`)

/**
 * A slice of sweep: see {@link REFRESH}.
 *
 * ARGV: now, goneKeptMs, channel, room, publishCmd: as for REFRESH.
 *
 * Returns {how many members it took out, 1 when more is left to sweep}.
 */
export const SWEEP = script<[number, number]>()('fastifyChatSweep', PRESENCE_KEYS,
  ['now', 'goneKeptMs', 'channel', 'room', 'publishCmd'], SWEEP_SLICE_FN + `
local removed, more = sweepSlice()
return {removed, more}
`)

/**
 * Adds back a slice of one server's members that are missing. A user a
 * sweep announced gone (the server has a tombstone) is announced again in
 * an envelope naming this server: its own sockets never saw the leave when
 * it was cut off, so they skip the join. A user missing without a tombstone
 * was lost by Redis (a restart, a flush): nobody was told the user left, so
 * most clients still list them, but a list handed out since the loss (a
 * reset `joined`, say) lacks them. Their join carries the presence version,
 * bumped by each call that restores any, so that only servers that handed
 * out a list since pass it on.
 *
 * ARGV: server, the server's id; users: a slice of its members, as a JSON
 * array of [id, name]; expiry: its new heartbeat; last: 1 on the last slice,
 * which uses up the tombstone; presenceEpoch: the epoch of the presence
 * version, if the room has none; channel, room, publishCmd: where and how to
 * announce.
 *
 * Returns how many members the server has in Redis after the slice.
 */
export const RESTORE = script<number>()('fastifyChatRestore', PRESENCE_KEYS,
  ['server', 'users', 'expiry', 'last', 'presenceEpoch', 'channel', 'room', 'publishCmd'], ANNOUNCE + `
redis.call('ZADD', serversKey, expiry, server)
local swept = redis.call('ZSCORE', goneKey, server)
local version = nil
local function restored()
  if version then return version end
  local current = redis.call('GET', versionKey)
  if current then
    local epoch, count = string.match(current, '^(.*):(%d+)$')
    version = epoch .. ':' .. (tonumber(count) + 1)
  else
    version = presenceEpoch .. ':1'
  end
  redis.call('SET', versionKey, version)
  return version
end
for _, user in ipairs(cjson.decode(users)) do
  if add(server, user[1], user[2]) == 2 then
    announce('join', user[1], user[2], nil, swept and {s = server} or {v = restored()})
  end
end
if last == '1' then redis.call('ZREM', goneKey, server) end
return redis.call('ZCARD', serverPrefix .. server)
`)

/**
 * A page of one server's members in Redis, in id order: what it checks
 * against those it holds when Redis has more.
 *
 * ARGV: server, the server's id; after: the last id of the previous page,
 * '' for the first; limit: the page's size.
 *
 * Returns the ids.
 */
export const MEMBERS = script<string[]>()('fastifyChatMembers', PRESENCE_KEYS,
  ['server', 'after', 'limit'], `
return redis.call('ZRANGEBYLEX', serverPrefix .. server, after == '' and '-' or '(' .. after, '+', 'LIMIT', 0, limit)
`)

/**
 * A page of a room's users, and their count. With `sweep` 1 it first sweeps
 * a slice, so that a room whose servers all died empties as it is looked at,
 * and answers only {1} while more is left to sweep (the caller sweeps, and
 * asks again with `sweep` 0).
 *
 * ARGV: after: the last id of the previous page, '' for the first; limit:
 * the page's size; sweep: 1 to sweep first; now, goneKeptMs, channel, room,
 * publishCmd: as for {@link SWEEP}.
 *
 * Returns {0, presence version or '', count, 1 when more users follow the
 * page, id, name, id, name...}.
 */
export const PAGE = script<Array<string | number>>()('fastifyChatPage', PRESENCE_KEYS,
  ['after', 'limit', 'sweep', 'now', 'goneKeptMs', 'channel', 'room', 'publishCmd'], SWEEP_SLICE_FN + `
if sweep == '1' then
  local _, more = sweepSlice()
  if more == 1 then return {1} end
end
local out = {0, redis.call('GET', versionKey) or '', redis.call('ZCARD', usersKey), 0}
local n = tonumber(limit)
if n > 0 then
  local ids = redis.call('ZRANGEBYLEX', usersKey, after == '' and '-' or '(' .. after, '+', 'LIMIT', 0, n + 1)
  if #ids > n then
    out[4] = 1
    ids[#ids] = nil
  end
  if #ids > 0 then
    local names = redis.call('HMGET', namesKey, unpack(ids))
    for i, id in ipairs(ids) do
      out[#out + 1] = id
      out[#out + 1] = names[i] or id
    end
  end
end
return out
`)
