-- remove: take one message out of a session, leaving a tombstone in its slot so sequence numbers
-- stay contiguous and no other message moves. Its client id is forgotten (the same id may be
-- sent again); removing a reply makes its turn unanswered again (a retry asks the model anew).
-- A summary that already covers the message keeps what it took from it.
-- ARGV: 1 seq, or 0 for the newest message not yet removed  2 fence or ''  3 settings
-- Returns {'ok', removed message} | {'none'} | {'stale'}

local last, fence = meta('seq', 'fence')
if ARGV[2] ~= '' and fence ~= ARGV[2] then
  return {'stale'}
end
last = tonumber(last) or 0
local seq = tonumber(ARGV[1])
local key, index, message
if seq == 0 then
  -- the newest live message: scan back from the end, hot list first, then the archive
  seq = last
  for _, list in ipairs({KEYS[1], KEYS[3]}) do
    for i = redis.call('LLEN', list) - 1, 0, -1 do
      local m = redis.call('LINDEX', list, i)
      if not is_removed(m) then
        key, index, message = list, i, m
        break
      end
      seq = seq - 1
    end
    if key then
      break
    end
  end
else
  key, index = locate(seq)
  message = key and redis.call('LINDEX', key, index)
end
if not message or is_removed(message) then
  return {'none'}
end

local ts = string.match(message, '^{"seq":%d+,"ts":(%d+),')
redis.call('LSET', key, index, '{"seq":' .. seq .. ',"ts":' .. ts .. ',"tokens":0' .. TOMBSTONE_END)
-- ids use a safe alphabet (no quotes or escapes), so a plain match reads them
local id = string.match(message, ',"id":"([^"]*)"')
local known = id and redis.call('HGET', KEYS[4], id)
if known and parse_id(known) == seq then
  redis.call('HDEL', KEYS[4], id)
end
local reply_to = tonumber(string.match(message, ',"reply_to":(%d+)}$'))
if reply_to then
  local asked = string.match(find(reply_to), ',"id":"([^"]*)"')
  if asked and redis.call('HGET', KEYS[4], asked) == reply_to .. ':' .. seq then
    redis.call('HSET', KEYS[4], asked, reply_to .. ':')
  end
end
local _, _, _, _, ttl_ms = settings(ARGV[3])
touch(ttl_ms)
return {'ok', message}
