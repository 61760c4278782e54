"""The Lua scripts a node runs in Redis (``ar_server.cluster.node``): each is one atomic round trip."""

from __future__ import annotations

# node.py rules 1 and 3 in one round trip per batch: 1 refreshed, 0 written again (it had expired), -1 another holds it.
REFRESH_LEASES = """
local out = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2]); out[i] = 1
  elseif not holder then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2]); out[i] = 0
  else
    out[i] = -1
  end
end
return out
"""
# A token bucket all nodes share (ar_server.limits, rule 4), on Redis's clock: spend one if there is one and
# return the tokens left. The key lapses once the bucket would be full again.
SPEND_TOKEN = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1]) or burst
local at = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if tokens >= 1 then tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(tokens)
"""
# Only the holder may drop a lease: a node releasing late must not drop the lease its successor just took.
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
