import { script } from './lua.js'

// Presence: a sorted set per room whose members are JSON arrays
// `[server id, user id, name]`, scored by when they expire (ms since the
// epoch). Members leave the set only through LEAVE and SWEEP, which announce
// the user gone once no member of theirs is left, so a user is present (in
// the list, and announced once) while any member of theirs is in the set,
// expired or not. Beside it, a "gone" sorted set remembers, by when, the
// members SWEEP announced gone: a server that was only cut off re-adds its
// members with a `join` for those. Members Redis lost are restored with a
// `join` carrying the presence version (`<epoch>:<restores>`, the epoch new
// once Redis lost its data): only servers that handed out a list without
// them since the loss pass it on; the others' members still list them.

const PRESENCE_KEYS = ['presenceKey', 'goneKey', 'versionKey'] as const

const OTHERS = `
local function others(id, except)
  for _, m in ipairs(redis.call('ZRANGE', presenceKey, 0, -1)) do
    if m ~= except and cjson.decode(m)[2] == id then return true end
  end
  return false
end
`

// Removes the members expired at `now` and announces each user then gone;
// ZREM decides which server's sweep announces, so it is announced once.
// The tombstones are kept for `goneKeptMs`.
const SWEEP_EXPIRED = OTHERS + `
local function sweep(now, channel, room, goneKeptMs)
  local gone = 0
  local expired = redis.call('ZRANGEBYSCORE', presenceKey, '-inf', now)
  if #expired == 0 then return 0 end
  local keep = tonumber(goneKeptMs)
  redis.call('ZREMRANGEBYSCORE', goneKey, '-inf', tonumber(now) - keep)
  for _, m in ipairs(expired) do
    if redis.call('ZREM', presenceKey, m) == 1 then
      local entry = cjson.decode(m)
      redis.call('ZADD', goneKey, now, m)
      if not others(entry[2], m) then
        redis.call('PUBLISH', channel, cjson.encode({t = 'p', e = {room = room, event = 'leave', user = {id = entry[2], name = entry[3]}}}))
        gone = gone + 1
      end
    end
  end
  redis.call('PEXPIRE', goneKey, keep)
  return gone
end
`

/**
 * Adds a member; announces the join unless the user was present already.
 *
 * KEYS[1] presenceKey: the room's presence set. KEYS[2] goneKey: its tombstones.
 * ARGV[1] member: the member to add.
 * ARGV[2] expiry: its score.
 * ARGV[3] userId: the user's id.
 * ARGV[4] channel: the room's channel.
 * ARGV[5] envelope: the join event's envelope, published as is.
 * ARGV[6] presenceEpoch: the epoch of the presence version, if the room has none.
 *
 * Returns 1 when the join was announced, else 0.
 */
export const JOIN = script<number>()('fastifyChatJoin', PRESENCE_KEYS,
  ['member', 'expiry', 'userId', 'channel', 'envelope', 'presenceEpoch'], OTHERS + `
local present = others(userId, member)
redis.call('ZADD', presenceKey, expiry, member)
redis.call('ZREM', goneKey, member)
redis.call('SET', versionKey, presenceEpoch .. ':0', 'NX')
if not present then redis.call('PUBLISH', channel, envelope) end
return present and 0 or 1
`)

/**
 * Removes a member; announces the leave unless the user is still present
 * through another member (another server).
 *
 * KEYS[1] presenceKey: the room's presence set. KEYS[2] goneKey: its tombstones.
 * ARGV[1] member: the member to remove.
 * ARGV[2] userId: the user's id.
 * ARGV[3] channel: the room's channel.
 * ARGV[4] envelope: the leave event's envelope, published as is.
 *
 * Returns 1 when the leave was announced, else 0.
 */
export const LEAVE = script<number>()('fastifyChatLeave', PRESENCE_KEYS,
  ['member', 'userId', 'channel', 'envelope'], OTHERS + `
if redis.call('ZREM', presenceKey, member) == 0 then return 0 end
if others(userId, member) then return 0 end
redis.call('PUBLISH', channel, envelope)
return 1
`)

/**
 * Replaces a member with one holding the new name, and announces the rename.
 *
 * KEYS[1] presenceKey: the room's presence set. KEYS[2] goneKey: its tombstones.
 * ARGV[1] oldMember: the member with the previous name.
 * ARGV[2] member: the member with the new name.
 * ARGV[3] expiry: its score.
 * ARGV[4] channel: the room's channel.
 * ARGV[5] envelope: the rename event's envelope, published as is.
 *
 * Returns 1.
 */
export const RENAME = script<number>()('fastifyChatRename', PRESENCE_KEYS,
  ['oldMember', 'member', 'expiry', 'channel', 'envelope'], `
redis.call('ZREM', presenceKey, oldMember)
redis.call('ZADD', presenceKey, expiry, member)
redis.call('PUBLISH', channel, envelope)
return 1
`)

/**
 * Removes expired members (a crashed server's) and announces the leave of
 * each user who is then gone everywhere, once.
 *
 * KEYS[1] presenceKey: the room's presence set. KEYS[2] goneKey: its tombstones.
 * ARGV[1] now: the current time; members scored at or below it are expired.
 * ARGV[2] channel: the room's channel.
 * ARGV[3] room: the room's name, for the events.
 * ARGV[4] goneKeptMs: how long the tombstones of swept members are kept.
 *
 * Returns how many leaves it announced.
 */
export const SWEEP = script<number>()('fastifyChatSweep', PRESENCE_KEYS,
  ['now', 'channel', 'room', 'goneKeptMs'], SWEEP_EXPIRED + `
return sweep(now, channel, room, goneKeptMs)
`)

/**
 * Who is in a room: sweeps first, so that whoever reads the list also
 * gets (or has already got) the leave of every user it lacks.
 *
 * KEYS and ARGV: as {@link SWEEP}.
 *
 * Returns {presence version, or '' when the room has none yet, ...every member}.
 */
export const LIST = script<string[]>()('fastifyChatList', PRESENCE_KEYS,
  ['now', 'channel', 'room', 'goneKeptMs'], SWEEP_EXPIRED + `
sweep(now, channel, room, goneKeptMs)
local out = {redis.call('GET', versionKey) or ''}
for _, m in ipairs(redis.call('ZRANGE', presenceKey, 0, -1)) do out[#out + 1] = m end
return out
`)

/**
 * Keeps one server's members of a room alive, adding back those that are
 * missing. A missing member SWEEP announced gone is announced again (unless
 * the user is present through another member), in an envelope naming this
 * server: its own sockets never saw the leave, since it was cut off when
 * the leave went out, so they skip the join. A member missing without a
 * tombstone was lost by Redis (a restart, a flush): nobody was told the user
 * left, so most clients still list them, but a list handed out since the
 * loss (a reset `joined`, say) lacks them. Its join carries the presence
 * version, one restore later than any such list, so only servers that
 * handed one out pass it on.
 *
 * KEYS[1] presenceKey: the room's presence set. KEYS[2] goneKey: its tombstones.
 * ARGV[1] members: the server's members in the room, as a JSON array.
 * ARGV[2] expiry: their new score.
 * ARGV[3] channel: the room's channel.
 * ARGV[4] room: the room's name, for the events.
 * ARGV[5] server: the server's id.
 * ARGV[6] presenceEpoch: the epoch of the presence version, if the room has none.
 *
 * Returns how many members it added back.
 */
export const REFRESH = script<number>()('fastifyChatRefresh', PRESENCE_KEYS,
  ['members', 'expiry', 'channel', 'room', 'server', 'presenceEpoch'], OTHERS + `
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
local added = 0
for _, m in ipairs(cjson.decode(members)) do
  if redis.call('ZSCORE', presenceKey, m) then
    redis.call('ZADD', presenceKey, expiry, m)
  else
    local entry = cjson.decode(m)
    local swept = redis.call('ZREM', goneKey, m) == 1
    local present = others(entry[2], m)
    redis.call('ZADD', presenceKey, expiry, m)
    if not present then
      local envelope = {t = 'p', e = {room = room, event = 'join', user = {id = entry[2], name = entry[3]}}}
      if swept then envelope.s = server else envelope.v = restored() end
      redis.call('PUBLISH', channel, cjson.encode(envelope))
    end
    added = added + 1
  end
end
return added
`)
