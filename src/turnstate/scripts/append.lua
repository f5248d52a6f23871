-- append: store a system or tool message, once per message id. Within a turn (a fence is
-- given) it is refused if a newer turn took the lease, and it renews the lease.
-- ARGV: 1 body  2 message id  3 fence or ''  4 max messages  5 ttl ms  6 lease ms
-- Returns {'ok', seq, ts} | {'duplicate', stored message} | {'stale'}

local prior = redis.call('HGET', KEYS[4], ARGV[2])
if prior then
  return {'duplicate', find(parse_id(prior))}
end
local now = now_ms()
if ARGV[3] ~= '' then
  if not fence_current(ARGV[3]) then
    return {'stale'}
  end
  if redis.call('HGET', KEYS[2], 'lease') == ARGV[3] then
    redis.call('HSET', KEYS[2], 'lease_until', now + tonumber(ARGV[6]))
  end
end
local seq = push(ARGV[1], tonumber(ARGV[4]), now)
redis.call('HSET', KEYS[4], ARGV[2], seq)
touch(tonumber(ARGV[5]))
return {'ok', seq, now}
