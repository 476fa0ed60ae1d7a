-- Count one request against its caller's rate limit and, for an idempotent write, look
-- up or claim its Idempotency-Key: one atomic round trip.
--
-- KEYS[1]  the caller's GCRA theoretical arrival time (integer microseconds)
-- KEYS[2]  (optional) the Idempotency-Key record, a hash:
--          fingerprint, token, and once answered status, body, headers
-- ARGV     interval_us, limit, and with KEYS[2]: fingerprint, token, lease_ms
--
-- Returns {allowed, remaining, reset_us, retry_after_us, tat_us, outcome, ...} where
-- outcome is "none", "claimed", "in_flight", "mismatch", or "replay" followed by the
-- stored status, body and headers. The GCRA lines mirror weaver.ratelimit.Gcra.check.

-- Redis's clock, not the gateway's: every gateway host then counts on one clock.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2]) * interval

local base = now
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat and tat > now then
  base = tat
end
local new_tat = base + interval
local debt = new_tat - now
if debt > burst then
  return {0, 0, base - now, debt - burst, base, 'none'}
end
-- %.0f: tostring would print these 16-digit numbers in exponent form and lose digits.
-- The key expires when the TAT is reached, where it would mean a full allowance anyway.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(debt / 1000))
local remaining = math.floor((burst - debt) / interval)
local verdict = {1, remaining, debt, 0, new_tat}

if #KEYS < 2 then
  table.insert(verdict, 'none')
  return verdict
end
local record = redis.call('HMGET', KEYS[2], 'fingerprint', 'status', 'body', 'headers')
if not record[1] then
  redis.call('HSET', KEYS[2], 'fingerprint', ARGV[3], 'token', ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  table.insert(verdict, 'claimed')
elseif record[1] ~= ARGV[3] then
  table.insert(verdict, 'mismatch')
elseif not record[2] then
  table.insert(verdict, 'in_flight')
else
  table.insert(verdict, 'replay')
  table.insert(verdict, record[2])
  table.insert(verdict, record[3])
  table.insert(verdict, record[4])
end
return verdict
