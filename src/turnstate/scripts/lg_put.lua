-- LangGraph checkpoint put: KEYS cp hash, index zset, writes hash (one thread, one slot).
-- ARGV[1] member "<ns>\0<checkpoint id>", ARGV[2] record, ARGV[3] TTL in ms (0: none).
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
