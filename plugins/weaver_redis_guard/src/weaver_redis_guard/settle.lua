-- Settle a claimed Idempotency-Key: store the answer, or release the key.
-- Only the claim's holder may: a claim whose lease ran out may belong to a later
-- request by now, and an answered record is never overwritten.
--
-- KEYS[1]  the Idempotency-Key record (see admit.lua)
-- ARGV     token, then either "release", or "store", ttl_ms, status, body, headers
--
-- Returns 1 when the record was settled, 0 when the claim was no longer held.

if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'status') == 1 then
  return 0
end
if ARGV[2] == 'release' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'body', ARGV[5], 'headers', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
