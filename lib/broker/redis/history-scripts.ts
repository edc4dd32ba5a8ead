import { script } from './lua.js'

// History. A room's keys: its epoch (a string), its last offset (a counter),
// its log (a stream capped at historySize, entry id `<offset>-1`, one field
// `m` holding the stored message's JSON), its cids (a sorted set of the
// latest cids scored by when they were stored, in ms) and their messages (a
// hash, cid -> stored JSON). The cids keep their messages apart from the
// stream, so a publish retried after the stream trimmed its entry is still
// answered with the stored copy, never stored twice.

const HISTORY_KEYS = ['epochKey', 'seqKey', 'logKey', 'cidsKey', 'cidMessagesKey'] as const

// Every history script starts here. A missing epoch means the room's history
// was lost (a flush, an eviction): a new epoch is set and the rest reset, so
// offsets from before can never be mistaken for new ones.
const EPOCH = `
local epoch = redis.call('GET', epochKey)
if not epoch then
  epoch = freshEpoch
  redis.call('SET', epochKey, epoch)
  redis.call('DEL', seqKey, logKey, cidsKey, cidMessagesKey)
end
`

/**
 * Stores and publishes one message. Epoch check, offset, stream entry, cid
 * memory and publish happen together, so no server sees a message the
 * history lacks, or the reverse. The channel carries the room's hash tag: on
 * a cluster, SPUBLISH sends it from the room's own shard.
 *
 * KEYS[1] epochKey, KEYS[2] seqKey, KEYS[3] logKey, KEYS[4] cidsKey, KEYS[5] cidMessagesKey: the room's (see above).
 * ARGV[1] freshEpoch: the epoch to set if the room has none.
 * ARGV[2] message: the message's JSON without `offset`, an object with at least one key.
 * ARGV[3] cid: the message's cid, '' for none.
 * ARGV[4] historySize: how many messages the stream keeps; 0 keeps none.
 * ARGV[5] publish: 'SPUBLISH' (sharded pub/sub, Redis 7) or 'PUBLISH'.
 * ARGV[6] channel: the room's channel.
 * ARGV[7] exclude: the connection key to skip, as JSON (a string, or null).
 *
 * Returns {1, stored JSON} for a cid stored before (nothing published), else
 * {0, stored JSON}. Publishes an envelope `{"t":"m","e":epoch,"x":exclude,"m":stored}`.
 */
export const PUBLISH = script<[number, string]>()('fastifyChatPublish', HISTORY_KEYS,
  ['freshEpoch', 'message', 'cid', 'historySize', 'publish', 'channel', 'exclude'], EPOCH + `
-- Cids are remembered for as long as a resend may follow: the latest 256 of
-- the room (as many as each server's own memory), and any stored in the last
-- minute, since resends queued behind a hung Redis can trail their original
-- by more messages than that; never more than CIDS_MAX.
local CIDS_KEPT = 256
local CIDS_KEPT_MS = 60000
local CIDS_MAX = 10000
if cid ~= '' then
  local seen = redis.call('HGET', cidMessagesKey, cid)
  if seen then return {1, seen} end
end
local seq = redis.call('INCR', seqKey)
local stored = '{"offset":' .. seq .. ',' .. string.sub(message, 2)
local size = tonumber(historySize)
if size > 0 then redis.call('XADD', logKey, 'MAXLEN', size, seq .. '-1', 'm', stored) end
if cid ~= '' then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('ZADD', cidsKey, now, cid)
  redis.call('HSET', cidMessagesKey, cid, stored)
  local count = redis.call('ZCARD', cidsKey)
  local drop = math.max(0, count - CIDS_MAX)
  if count > CIDS_KEPT then
    -- Each publish adds one cid: dropping up to two expired ones keeps up.
    local expired = redis.call('ZRANGEBYSCORE', cidsKey, '-inf', now - CIDS_KEPT_MS, 'LIMIT', 0, math.min(2, count - CIDS_KEPT))
    drop = math.max(drop, #expired)
  end
  if drop > 0 then
    local oldest = redis.call('ZPOPMIN', cidsKey, drop)
    for i = 1, #oldest, 2 do redis.call('HDEL', cidMessagesKey, oldest[i]) end
  end
end
redis.call(publish, channel, '{"t":"m","e":' .. cjson.encode(epoch) .. ',"x":' .. exclude .. ',"m":' .. stored .. '}')
return {0, stored}
`)

/**
 * The latest messages of a room.
 *
 * KEYS[1] epochKey, KEYS[2] seqKey, KEYS[3] logKey, KEYS[4] cidsKey, KEYS[5] cidMessagesKey: the room's.
 * ARGV[1] freshEpoch: the epoch to set if the room has none.
 * ARGV[2] limit: at most this many messages.
 *
 * Returns {epoch, latest offset, ...stored JSON, oldest first}.
 */
export const RECENT = script<[string, number, ...string[]]>()('fastifyChatRecent', HISTORY_KEYS,
  ['freshEpoch', 'limit'], EPOCH + `
local seq = tonumber(redis.call('GET', seqKey) or '0')
local out = {epoch, seq}
local n = tonumber(limit)
if n > 0 then
  local entries = redis.call('XREVRANGE', logKey, '+', '-', 'COUNT', n)
  for i = #entries, 1, -1 do out[#out + 1] = entries[i][2][2] end
end
return out
`)

/**
 * Every message of a room after an offset.
 *
 * KEYS[1] epochKey, KEYS[2] seqKey, KEYS[3] logKey, KEYS[4] cidsKey, KEYS[5] cidMessagesKey: the room's.
 * ARGV[1] freshEpoch: the epoch to set if the room has none.
 * ARGV[2] after: the offset the caller has.
 *
 * Returns {epoch, latest offset, 1, ...stored JSON, oldest first}, or
 * {epoch, latest offset, 0} when the stream no longer holds every message
 * after `after` (or `after` is beyond the latest).
 */
export const SINCE = script<[string, number, number, ...string[]]>()('fastifyChatSince', HISTORY_KEYS,
  ['freshEpoch', 'after'], EPOCH + `
local seq = tonumber(redis.call('GET', seqKey) or '0')
local from = tonumber(after)
if from > seq then return {epoch, seq, 0} end
local entries = redis.call('XRANGE', logKey, '(' .. from .. '-1', '+')
if #entries ~= seq - from then return {epoch, seq, 0} end
local out = {epoch, seq, 1}
for i = 1, #entries do out[#out + 1] = entries[i][2][2] end
return out
`)

/**
 * The latest messages of a room before an offset: one step of a scroll back.
 * Reads at most `limit + 1` entries down the stream from `before`, the extra
 * one telling whether older ones are kept.
 *
 * KEYS[1] epochKey, KEYS[2] seqKey, KEYS[3] logKey, KEYS[4] cidsKey, KEYS[5] cidMessagesKey: the room's.
 * ARGV[1] freshEpoch: the epoch to set if the room has none.
 * ARGV[2] before: only offsets below this one, an integer >= 0 in decimal digits.
 * ARGV[3] limit: at most this many messages.
 *
 * Returns {epoch, latest offset, more (1 or 0), ...stored JSON, oldest first}.
 */
export const BEFORE = script<[string, number, number, ...string[]]>()('fastifyChatBefore', HISTORY_KEYS,
  ['freshEpoch', 'before', 'limit'], EPOCH + `
local seq = tonumber(redis.call('GET', seqKey) or '0')
local out = {epoch, seq, 0}
local n = tonumber(limit)
if tonumber(before) <= 1 then return out end
-- The digits as given: tostring() of a large Lua number is not a stream id.
local entries = redis.call('XREVRANGE', logKey, '(' .. before .. '-1', '-', 'COUNT', n + 1)
local count = #entries
if count > n then
  out[3] = 1
  count = n
end
for i = count, 1, -1 do out[#out + 1] = entries[i][2][2] end
return out
`)
