-- append: store a system or tool message, once per message id. Within a turn (a fence is
-- given) it is refused if a newer turn took the lease, and it renews the lease.
-- ARGV: 1 body  2 message id  3 fence or ''  4 settings (see settings() in _lib.lua)
-- Returns {'ok', seq, ts} | {'duplicate', stored message} | {'stale'}

local prior = redis.call('HGET', KEYS[4], ARGV[2])
if prior then
  return {'duplicate', find(parse_id(prior))}
end
local s = settings(ARGV[4])
local now = now_ms()
local m = meta('seq', 'fence', 'lease')
local seq = (tonumber(m.seq) or 0) + 1
local changed = {'seq', seq}
if ARGV[3] ~= '' then
  if m.fence ~= ARGV[3] then
    return {'stale'}
  end
  if m.lease == ARGV[3] then
    changed[3], changed[4] = 'lease_until', now + s.lease_ms
  end
end
push(ARGV[1], seq, s.max_messages, now)
redis.call('HSET', KEYS[2], unpack(changed))
redis.call('HSET', KEYS[4], ARGV[2], seq)
touch(s.ttl_ms)
return {'ok', seq, now}
