//! The Lua scripts of the protocol. Each step is one script, so one round
//! trip, and every expiry decision reads the server's clock (TIME) inside
//! it; the client's clock is never consulted.
//!
//! Every script gets the semaphore's keys in the order of [`super::keys::Keys`]:
//! `KEYS[1]` meta (hash: slots, fence, created), `KEYS[2]` holders (hash:
//! holder id -> "slot fence since pid host"), `KEYS[3]` deadlines (sorted
//! set: holder id scored by its lease deadline), `KEYS[4]` free (sorted set:
//! the free slot numbers, scored by themselves), `KEYS[5]` waiters (sorted
//! set: waiting holder ids, scored by when their registration runs out),
//! `KEYS[6]` wake (list of wake tokens waiters BLPOP). Times are server
//! microseconds.
//!
//! Times and fences pass through `n()` before they reach `redis.call`: Lua
//! turns a number into a string with 14 significant digits, too few for a
//! time in microseconds (slot numbers are small enough to need none).

use std::sync::OnceLock;

use ::redis::Script;

/// What every script starts with: the keys by name, `n()`, and the
/// server's time now, as a number and as a string.
const HEAD: &str = r"
local meta, holders, deadlines, free, waiters, wake =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function n(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_s = n(now)
";

/// The fields of a holder record. (Each script defines only the functions
/// it uses: a definition costs the server time on every call.)
const PARSE: &str = r"
-- A holder record: 'slot fence since pid host'.
local function parse(rec)
    local slot, fence, since, pid, host = string.match(rec, '^(%d+) (%d+) (%d+) (%d+) (.*)$')
    return tonumber(slot), tonumber(fence), tonumber(since), tonumber(pid), host
end
";

/// Expiry: frees the slots of leases that ran out.
const EXPIRE: &str = r"
-- The slot of a holder record, as the string it is stored as (a slot
-- number is small: it needs no n()).
local function slot_of(rec)
    return string.match(rec, '^(%d+) ')
end

-- Frees the slot of every holder whose lease deadline has passed; returns
-- how many there were.
local function expire()
    local dead = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now_s)
    for _, id in ipairs(dead) do
        local rec = redis.call('HGET', holders, id)
        if rec then
            local slot = slot_of(rec)
            redis.call('ZADD', free, slot, slot)
            redis.call('HDEL', holders, id)
        end
        redis.call('ZREM', deadlines, id)
    end
    return #dead
end
";

/// Wake-ups for registered waiters.
const WAKE: &str = r"
-- Pushes a wake token for each free slot that a registered waiter could
-- take and that no token stands for yet; the list never holds more tokens
-- than there are waiters. Costs one call when nobody waits.
local function wake_waiters()
    if redis.call('ZCARD', waiters) == 0 then
        return
    end
    redis.call('ZREMRANGEBYSCORE', waiters, '-inf', now_s)
    local w = redis.call('ZCARD', waiters)
    if w == 0 then
        redis.call('DEL', wake)
        return
    end
    local want = math.min(w, redis.call('ZCARD', free)) - redis.call('LLEN', wake)
    for _ = 1, want do
        redis.call('RPUSH', wake, '1')
    end
end
";

/// Creation on first use.
const ENSURE: &str = r"
-- Creates the semaphore with `slots` slots if it does not exist. Returns
-- its fence counter (a string) and whether it was created.
local function ensure(slots)
    local fence = redis.call('HGET', meta, 'fence')
    if fence then
        return fence, false
    end
    redis.call('DEL', holders, deadlines, free, waiters, wake)
    redis.call('HSET', meta, 'slots', n(slots), 'fence', '0', 'created', now_s)
    for i = 0, slots - 1 do
        redis.call('ZADD', free, i, i)
    end
    return '0', true
end
";

/// Opens the semaphore, creating it with `ARGV[1]` slots if it is missing.
/// Returns `{created (0/1), slots}`.
const OPEN: &str = r"
local _, created = ensure(tonumber(ARGV[1]))
return {created and 1 or 0, tonumber(redis.call('HGET', meta, 'slots'))}
";

/// Acquires a slot for holder `ARGV[1]` (ARGV: id, slots for a new
/// semaphore, lease µs, pid, host, wait µs, flags). Flags: 1 if the id may
/// have been sent before (a resend, or an earlier attempt of the same
/// wait), 2 if it may be registered as a waiter; a fresh id skips those
/// lookups. A holder that already has an unexpired record gets it back: a
/// resend is never a second slot. Returns `{1, slot, fence, remaining lease
/// µs}` or, when no slot is free, `{0, µs until the earliest deadline (-1:
/// none)}`; a refused holder with `wait µs > 0` is registered as a waiter
/// for that long.
const ACQUIRE: &str = r"
local id, lease, pid, host, wait = ARGV[1], tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6])
local flags = tonumber(ARGV[7])
local stored = ensure(tonumber(ARGV[2]))
expire()
if flags % 2 == 1 then
    local rec = redis.call('HGET', holders, id)
    if rec then
        local slot, fence = parse(rec)
        redis.call('ZREM', waiters, id)
        return {1, slot, fence, tonumber(redis.call('ZSCORE', deadlines, id)) - now}
    end
end
local popped = redis.call('ZPOPMIN', free)
if #popped == 0 then
    if wait > 0 then
        redis.call('ZADD', waiters, n(now + wait), id)
    end
    local first = redis.call('ZRANGE', deadlines, 0, 0, 'WITHSCORES')
    if #first == 0 then
        return {0, -1}
    end
    return {0, math.max(tonumber(first[2]) - now, 0)}
end
-- The slot as stored, the fence formatted once.
local slot = popped[1]
local fence = n(math.max(tonumber(stored) + 1, now))
redis.call('HSET', meta, 'fence', fence)
redis.call('HSET', holders, id, slot .. ' ' .. fence .. ' ' .. now_s .. ' ' .. pid .. ' ' .. host)
redis.call('ZADD', deadlines, n(now + lease), id)
if flags >= 2 then
    redis.call('ZREM', waiters, id)
end
wake_waiters()
return {1, tonumber(slot), tonumber(fence), lease}
";

/// Releases holder `ARGV[1]`. Returns 1, or 0 when the holder has no
/// unexpired lease (it expired or was never there): then nothing is freed.
const RELEASE: &str = r"
local expired = expire()
local id = ARGV[1]
local rec = redis.call('HGET', holders, id)
if not rec then
    if expired > 0 then
        wake_waiters()
    end
    return 0
end
local slot = slot_of(rec)
redis.call('HDEL', holders, id)
redis.call('ZREM', deadlines, id)
redis.call('ZADD', free, slot, slot)
wake_waiters()
return 1
";

/// Renews the leases of holders `ARGV[2..]` to `ARGV[1]` µs from now.
/// Returns one flag per holder: 1 renewed, 0 refused (its lease had
/// expired, or the semaphore is gone).
const RENEW: &str = r"
local expired = expire()
local lease = tonumber(ARGV[1])
local result = {}
for i = 2, #ARGV do
    local id = ARGV[i]
    if redis.call('HEXISTS', holders, id) == 1 then
        redis.call('ZADD', deadlines, 'XX', n(now + lease), id)
        result[i - 1] = 1
    else
        result[i - 1] = 0
    end
end
if expired > 0 then
    wake_waiters()
end
return result
";

/// A waiter that stops waiting: holder `ARGV[1]` leaves the waiters, and a
/// wake token it may have taken passes to the next waiter.
const LEAVE: &str = r"
expire()
redis.call('ZREM', waiters, ARGV[1])
if redis.call('ZCARD', waiters) == 0 then
    -- Nobody is left to take a token: none is kept.
    redis.call('DEL', wake)
end
wake_waiters()
return 1
";

/// Reads the semaphore without changing it. Returns `{}` when it does not
/// exist, else `{slots, free now, {slot, fence, since, remaining µs, pid,
/// host}...}` with the unexpired holders by slot.
const INFO: &str = r"
if redis.call('EXISTS', meta) == 0 then
    return {}
end
local slots = tonumber(redis.call('HGET', meta, 'slots'))
local live = redis.call('ZRANGEBYSCORE', deadlines, '(' .. now_s, '+inf', 'WITHSCORES')
local result = {slots, 0}
local count = 0
for i = 1, #live, 2 do
    local rec = redis.call('HGET', holders, live[i])
    if rec then
        local slot, fence, since, pid, host = parse(rec)
        count = count + 1
        result[#result + 1] = {slot, fence, since, tonumber(live[i + 1]) - now, pid, host}
    end
end
result[2] = math.max(slots - count, 0)
return result
";

/// Deletes every key of the semaphore. Returns 1, or 0 if it did not exist.
const UNLINK: &str = r"
local existed = redis.call('EXISTS', meta)
redis.call('DEL', meta, holders, deadlines, free, waiters, wake)
return existed
";

/// The scripts, each compiled once per process (redis-rs sends EVALSHA and
/// loads a script only when the server answers NOSCRIPT, after a restart).
pub(crate) struct Scripts {
    pub(crate) open: Script,
    pub(crate) acquire: Script,
    pub(crate) release: Script,
    pub(crate) renew: Script,
    pub(crate) leave: Script,
    pub(crate) info: Script,
    pub(crate) unlink: Script,
}

/// The process's scripts.
pub(crate) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let script = |parts: &[&str], body: &str| {
            let mut text = HEAD.to_owned();
            for part in parts.iter().chain([&body]) {
                text.push('\n');
                text.push_str(part);
            }
            Script::new(&text)
        };
        Scripts {
            open: script(&[ENSURE], OPEN),
            acquire: script(&[PARSE, EXPIRE, WAKE, ENSURE], ACQUIRE),
            release: script(&[EXPIRE, WAKE], RELEASE),
            renew: script(&[EXPIRE, WAKE], RENEW),
            leave: script(&[EXPIRE, WAKE], LEAVE),
            info: script(&[PARSE], INFO),
            unlink: script(&[], UNLINK),
        }
    })
}
