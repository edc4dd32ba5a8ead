import type { ChainableCommander, Redis } from 'ioredis'
import { FST_CHAT_ADAPTER_UNAVAILABLE } from '../../errors.js'

/**
 * A Lua script, with the names of its KEYS and ARGV in the order Redis hands
 * them over. The order is written down once: the script's first lines bind
 * each name to its slot (`local epochKey = KEYS[1]`), and call sites pass
 * values by name through {@link runScript} or {@link queueScript}.
 * `R` is what the script returns.
 */
export interface Script<K extends string, A extends string, R> {
  /** The command ioredis defines it as (EVALSHA, with EVAL when Redis lost its script cache). */
  readonly command: string
  readonly keys: readonly K[]
  readonly args: readonly A[]
  readonly lua: string
  /** Never set: carries the result type. */
  readonly result?: R
}

function script<R> () {
  return <const K extends string, const A extends string> (command: string, keys: readonly K[], args: readonly A[], body: string): Script<K, A, R> => {
    const bind = [
      ...keys.map((name, i) => `local ${name} = KEYS[${i + 1}]`),
      ...args.map((name, i) => `local ${name} = ARGV[${i + 1}]`)
    ]
    return Object.freeze({ command, keys, args, lua: `${bind.join('\n')}\n${body}` })
  }
}

type Values<N extends string> = Readonly<Record<N, string | number>>

function flatten<K extends string, A extends string> (script: Script<K, A, unknown>, keys: Values<K>, args: Values<A>): Array<string | number> {
  return [...script.keys.map((name) => keys[name]), ...script.args.map((name) => args[name])]
}

type Commands = Record<string, (...args: Array<string | number>) => unknown>

// Clients with no `commandTimeout` of their own (one the user handed in,
// whose options are theirs): how long a script on them may take.
const scriptTimeouts = new WeakMap<object, number>()

/** Bounds every script run on `redis` to `ms`, for a client whose own commands have no timeout. */
export function boundScripts (redis: object, ms: number): void {
  scriptTimeouts.set(redis, ms)
}

/** Runs `script` on a connection where {@link defineScripts} ran; a failure or timeout is `FST_CHAT_ADAPTER_UNAVAILABLE`. */
export async function runScript<K extends string, A extends string, R> (redis: Redis, script: Script<K, A, R>, keys: Values<K>, args: Values<A>): Promise<R> {
  const work = (redis as unknown as Commands)[script.command](...flatten(script, keys, args)) as Promise<R>
  return await unavailableOnError(work, scriptTimeouts.get(redis))
}

/**
 * `work`, with any failure of the connection (ioredis's own errors) as
 * `FST_CHAT_ADAPTER_UNAVAILABLE`, and so too no answer within `timeoutMs`
 * when given. Redis may still run a command given up on.
 */
export async function unavailableOnError<T> (work: Promise<T>, timeoutMs?: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    if (timeoutMs === undefined) return await work
    return await Promise.race([work, new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    })])
  } catch (err) {
    if (err instanceof FST_CHAT_ADAPTER_UNAVAILABLE) throw err
    throw new FST_CHAT_ADAPTER_UNAVAILABLE(`Redis: ${(err as Error)?.message ?? String(err)}`, { cause: err })
  } finally {
    clearTimeout(timer)
  }
}

/** Adds `script` to a pipeline of a connection where {@link defineScripts} ran. */
export function queueScript<K extends string, A extends string> (pipeline: ChainableCommander, script: Script<K, A, unknown>, keys: Values<K>, args: Values<A>): void {
  (pipeline as unknown as Commands)[script.command](...flatten(script, keys, args))
}

// ---------------------------------------------------------------------------
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
 * memory and PUBLISH happen together, so no server sees a message the
 * history lacks, or the reverse.
 *
 * KEYS[1] epochKey, KEYS[2] seqKey, KEYS[3] logKey, KEYS[4] cidsKey, KEYS[5] cidMessagesKey: the room's (see above).
 * ARGV[1] freshEpoch: the epoch to set if the room has none.
 * ARGV[2] message: the message's JSON without `offset`, an object with at least one key.
 * ARGV[3] cid: the message's cid, '' for none.
 * ARGV[4] historySize: how many messages the stream keeps; 0 keeps none.
 * ARGV[5] channel: the room's channel.
 * ARGV[6] exclude: the connection key to skip, as JSON (a string, or null).
 *
 * Returns {1, stored JSON} for a cid stored before (nothing published), else
 * {0, stored JSON}. Publishes an envelope `{"t":"m","e":epoch,"x":exclude,"m":stored}`.
 */
export const PUBLISH = script<[number, string]>()('fastifyChatPublish', HISTORY_KEYS,
  ['freshEpoch', 'message', 'cid', 'historySize', 'channel', 'exclude'], EPOCH + `
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
redis.call('PUBLISH', channel, '{"t":"m","e":' .. cjson.encode(epoch) .. ',"x":' .. exclude .. ',"m":' .. stored .. '}')
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

// ---------------------------------------------------------------------------
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

const SCRIPTS: ReadonlyArray<Script<string, string, unknown>> = [PUBLISH, RECENT, SINCE, JOIN, LEAVE, RENAME, SWEEP, LIST, REFRESH]

/** Defines every script as a command of `redis` (and of its pipelines). */
export function defineScripts (redis: Pick<Redis, 'defineCommand'>): void {
  for (const { command, keys, lua } of SCRIPTS) redis.defineCommand(command, { numberOfKeys: keys.length, lua })
}
