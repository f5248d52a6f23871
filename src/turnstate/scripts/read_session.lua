-- read_session: a consistent snapshot of a session in one step (no write, no TTL change).
-- ARGV: 1 '1' to include every held message (archive then hot list), '0' for counts only
-- Returns {last seq, hot count, archived count, summary, summary upto, pttl, lease held, messages...}

local last, summary, summary_upto, lease, lease_until = meta('seq', 'summary', 'summary_upto', 'lease', 'lease_until')
local lease_held = lease and tonumber(lease_until) > now_ms() and 1 or 0
local out = {
  tonumber(last) or 0,
  redis.call('LLEN', KEYS[1]),
  redis.call('LLEN', KEYS[3]),
  summary or '',
  tonumber(summary_upto) or 0,
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
