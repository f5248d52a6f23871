-- append: store a system or tool message, once per message id. Within a turn (a fence is
-- given) it is refused if a newer turn took the lease, and it renews the lease.
-- ARGV: 1 body  2 message id  3 fence or ''  4 settings (see settings() in _lib.lua)
-- Returns {'ok', seq, ts} | {'duplicate', stored message} | {'stale'}

local prior = redis.call('HGET', KEYS[4], ARGV[2])
if prior then
  return {'duplicate', find(parse_id(prior))}
end
local lease_ms, max_messages, _, _, ttl_ms = settings(ARGV[4])
local now = now_ms()
local last, fence, lease = meta('seq', 'fence', 'lease')
local seq = (tonumber(last) or 0) + 1
local changed = {'seq', seq}
if ARGV[3] ~= '' then
  if fence ~= ARGV[3] then
    return {'stale'}
  end
  if lease == ARGV[3] then
    changed[3], changed[4] = 'lease_until', now + lease_ms
  end
end
push(ARGV[1], seq, max_messages, now)
redis.call('HSET', KEYS[2], unpack(changed))
redis.call('HSET', KEYS[4], ARGV[2], seq)
touch(ttl_ms)
return {'ok', seq, now}
