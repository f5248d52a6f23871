-- LangGraph copy/remove: ARGV[1] TTL ms, ARGV[2] count n of members to remove, then n members,
-- then pairs (member, record) to store, a '' separator, then pairs (member, writes JSON).
local n = tonumber(ARGV[2])
local i = 3
for _ = 1, n do
  redis.call('HDEL', KEYS[1], ARGV[i]); redis.call('ZREM', KEYS[2], ARGV[i]); redis.call('HDEL', KEYS[3], ARGV[i])
  i = i + 1
end
local target = 1
while i <= #ARGV do
  if ARGV[i] == '' then target = 3; i = i + 1
  else
    redis.call('HSET', KEYS[target], ARGV[i], ARGV[i + 1])
    if target == 1 then redis.call('ZADD', KEYS[2], 0, ARGV[i]) end
    i = i + 2
  end
end
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  for k = 1, 3 do if redis.call('EXISTS', KEYS[k]) == 1 then redis.call('PEXPIRE', KEYS[k], ttl) end end
end
return 1
