-- read_session: a consistent snapshot of a session in one step (no write, no TTL change).
-- ARGV: 1 '1' to include every held message (archive then hot list), '0' for counts only
-- Returns {last seq, hot count, archived count, summary, summary upto, pttl, lease held, messages...}

local meta = redis.call('HMGET', KEYS[2], 'seq', 'summary', 'summary_upto', 'lease', 'lease_until')
local lease_held = meta[4] and tonumber(meta[5]) > now_ms() and 1 or 0
local out = {
  tonumber(meta[1]) or 0,
  redis.call('LLEN', KEYS[1]),
  redis.call('LLEN', KEYS[3]),
  meta[2] or '',
  tonumber(meta[3]) or 0,
  redis.call('PTTL', KEYS[2]),
  lease_held,
}
if ARGV[1] == '1' then
  for _, key in ipairs({KEYS[3], KEYS[1]}) do
    for _, m in ipairs(redis.call('LRANGE', key, 0, -1)) do
      out[#out + 1] = m
    end
  end
end
return out
