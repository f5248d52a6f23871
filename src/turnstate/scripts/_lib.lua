-- Shared by every session script; the loader puts it in front of each one.
-- KEYS: 1 msgs (List, oldest first)  2 meta (Hash)  3 archive (List)  4 ids (Hash)  5 wake (List)

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Store a message body (JSON without seq/ts) as the next message; messages pushed past
-- max_messages move to the archive, in order, in this same script: nothing is dropped.
local function push(body, max_messages, ts)
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  local len = redis.call('RPUSH', KEYS[1], '{"seq":' .. seq .. ',"ts":' .. ts .. ',' .. string.sub(body, 2))
  for _ = 1, len - max_messages do
    redis.call('LMOVE', KEYS[1], KEYS[3], 'LEFT', 'RIGHT')
  end
  return seq
end

-- Every write refreshes the TTL of every key of the session.
local function touch(ttl_ms)
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], ttl_ms)
  end
end

-- A client message id maps to "<seq>" while unanswered, "<seq>:<reply seq>" once answered.
local function parse_id(value)
  local seq, reply = string.match(value, '^(%d+):?(%d*)$')
  return tonumber(seq), tonumber(reply)
end

-- The stored message with this seq: hot list and archive are contiguous runs of seq.
local function find(seq)
  local last = tonumber(redis.call('HGET', KEYS[2], 'seq'))
  local first_hot = last - redis.call('LLEN', KEYS[1]) + 1
  if seq >= first_hot then
    return redis.call('LINDEX', KEYS[1], seq - first_hot)
  end
  local index = redis.call('LLEN', KEYS[3]) - (first_hot - seq)
  if index >= 0 then
    return redis.call('LINDEX', KEYS[3], index)
  end
  return ''
end

-- Does this fence still hold the session? (No newer turn has been given a lease.)
local function fence_current(fence)
  return redis.call('HGET', KEYS[2], 'fence') == fence
end

-- Release the lease if this fence holds it, and wake one queued turn.
local function release(fence, wake_ms)
  if redis.call('HGET', KEYS[2], 'lease') == fence then
    redis.call('HDEL', KEYS[2], 'lease', 'lease_until')
    redis.call('LPUSH', KEYS[5], fence)
    redis.call('LTRIM', KEYS[5], 0, 0)
    redis.call('PEXPIRE', KEYS[5], wake_ms)
  end
end

local function summary_due(summary_every)
  local m = redis.call('HMGET', KEYS[2], 'seq', 'summary_upto')
  return (tonumber(m[1]) or 0) - (tonumber(m[2]) or 0) >= summary_every and 1 or 0
end
