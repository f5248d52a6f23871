-- commit_summary: store a summary that covers every message up to `new upto`, if and only if
-- the watermark is still `expected upto` (compare-and-set: of two workers, one commits). Then
-- the archived messages it covers are released, with their client ids.
-- ARGV: 1 expected upto  2 new upto  3 summary  4 summary tokens  5 settings (see settings() in _lib.lua)
-- Returns the number of archived messages released, or -1 if the watermark had moved.

local last, upto = meta('seq', 'summary_upto')
if (tonumber(upto) or 0) ~= tonumber(ARGV[1]) then
  return -1
end
local new_upto = tonumber(ARGV[2])
redis.call('HSET', KEYS[2], 'summary', ARGV[3], 'summary_upto', new_upto, 'summary_tokens', ARGV[4])
local first_hot = (tonumber(last) or 0) - redis.call('LLEN', KEYS[1]) + 1 -- no messages yet: seq unset
local archived = redis.call('LLEN', KEYS[3])
-- A question whose reply the summary does not cover yet stays in the archive, with everything
-- after it, until a later step covers the reply: its id (which a retry needs to find the reply)
-- is released with the question, and the reply, stored as "<id>:reply", cannot name it.
local release = math.min(new_upto, first_hot - 1) - (first_hot - archived) + 1
if release > 0 then
  local covered = redis.call('LRANGE', KEYS[3], 0, release - 1)
  for i, m in ipairs(covered) do
    -- ids use a safe alphabet (no quotes or escapes), so a plain match reads them
    local id = string.match(m, ',"id":"([^"]*)"')
    local known = id and redis.call('HGET', KEYS[4], id)
    if known then
      local _, reply = parse_id(known)
      if reply and reply > new_upto then
        release = i - 1
        break
      end
      redis.call('HDEL', KEYS[4], id)
    end
  end
  if release > 0 then
    redis.call('LTRIM', KEYS[3], release, -1)
  end
end
local _, _, _, _, ttl_ms = settings(ARGV[5])
touch(ttl_ms)
return math.max(release, 0)
