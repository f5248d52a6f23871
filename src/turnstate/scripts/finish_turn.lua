-- finish_turn: store the assistant reply to a begun turn, once, and release the lease.
-- ARGV: 1 body  2 user message id  3 user seq  4 fence (0: policy interleave, no lease)
--       5 settings (see settings() in _lib.lua)
-- Returns {'ok', reply seq, ts, due} | {'answered', reply} | {'stale'} | {'gone'} (the session
-- no longer holds the turn) | {'unknown'} (its id names another message: a foreign turn)

local prior = redis.call('HGET', KEYS[4], ARGV[2])
if not prior then
  return {'gone'}
end
local seq, reply_seq = parse_id(prior)
if seq ~= tonumber(ARGV[3]) then
  return {'unknown'}
end
if reply_seq then
  return {'answered', find(reply_seq)}
end
local last, fence, lease, summary_upto = meta('seq', 'fence', 'lease', 'summary_upto')
if ARGV[4] ~= '0' and fence ~= ARGV[4] then
  return {'stale'}
end

local lease_ms, max_messages, window_messages, _, ttl_ms, summary_every = settings(ARGV[5])
local now = now_ms()
reply_seq = (tonumber(last) or 0) + 1
push(ARGV[1], reply_seq, max_messages, now)
redis.call('HSET', KEYS[2], 'seq', reply_seq)
redis.call('HSET', KEYS[4], ARGV[2], seq .. ':' .. reply_seq)
release(lease, ARGV[4], lease_ms)
touch(ttl_ms)
return {'ok', reply_seq, now, summary_due(reply_seq - window_messages, summary_upto, summary_every)}
