-- Take, renew or refuse one of a tenant's query slots: one atomic step, so that the
-- limit holds exactly across every gateway process that shares this Redis.
--
-- KEYS[1]  the tenant's slots: a sorted set of query ids, each scored by the moment its
--          lease lapses (milliseconds on Redis's clock)
-- ARGV     query_id, limit, lease_ms
--
-- Returns 1 when the query holds a slot until lease_ms from now, 0 when every slot is
-- taken by a live lease.

-- Redis's clock, not the gateway's: every gateway host then leases on one clock.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

-- Leases that lapsed belong to processes that are gone (or stopped renewing).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
-- %.0f: tostring would print these 13-digit numbers in exponent form and lose digits.
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[1])
-- The set lives as long as its longest lease, so an idle tenant leaves nothing behind.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', tonumber(last[2])))
return 1
