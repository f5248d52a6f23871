-- Shared by every session script; the loader puts it in front of each one.
-- KEYS: 1 msgs (List, oldest first)  2 meta (Hash)  3 archive (List)  4 ids (Hash)  5 wake (List)
-- Each redis.call costs a few microseconds, so a script reads `meta` once (meta()) and writes
-- it once (one HSET of everything it changed). Lua tables cost too (a small one about as much as
-- a call): helpers return several values rather than a table.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The store's settings, sent as one argument (the client packs each argument separately, at
-- about a microsecond apiece): lease ms, max messages, window messages, window tokens, ttl ms,
-- summary every, as six numbers in that order.
local function settings(arg)
  local a, b, c, d, e, f = string.match(arg, '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
  return tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e), tonumber(f)
end

-- The named fields of `meta`, read with one HMGET, in that order (a missing field is false).
local function meta(...)
  return unpack(redis.call('HMGET', KEYS[2], ...))
end

-- Store a message body (JSON without seq/ts) as message `seq`; the caller writes `seq` to meta.
-- Messages pushed past max_messages move to the archive, in order, in this same script:
-- nothing is dropped.
local function push(body, seq, max_messages, ts)
  local len = redis.call('RPUSH', KEYS[1], '{"seq":' .. seq .. ',"ts":' .. ts .. ',' .. string.sub(body, 2))
  for _ = 1, len - max_messages do
    redis.call('LMOVE', KEYS[1], KEYS[3], 'LEFT', 'RIGHT')
  end
end

-- The token count of a stored message, which starts {"seq":N,"ts":T,"tokens":K,... (plain finds:
-- a pattern match costs twice as much, and the window loop runs this for every message).
local function tokens_of(message)
  local start = string.find(message, ',"tokens":', 8, true) + 10
  return tonumber(string.sub(message, start, string.find(message, ',', start, true) - 1))
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

-- Where the message with this seq is: its list and index, or nothing. The hot list and the
-- archive are contiguous runs of seq (a removed message keeps its slot as a tombstone).
local function locate(seq)
  local last = tonumber(redis.call('HGET', KEYS[2], 'seq')) or 0
  local first_hot = last - redis.call('LLEN', KEYS[1]) + 1
  if seq > last or seq < 1 then
    return nil
  end
  if seq >= first_hot then
    return KEYS[1], seq - first_hot
  end
  local index = redis.call('LLEN', KEYS[3]) - (first_hot - seq)
  if index >= 0 then
    return KEYS[3], index
  end
  return nil
end

-- The stored message with this seq, or '' when it is no longer held.
local function find(seq)
  local key, index = locate(seq)
  if key then
    return redis.call('LINDEX', key, index)
  end
  return ''
end

-- A removed message is replaced by {"seq":N,"ts":T,"tokens":0,"removed":true}: nothing else
-- ends in `true}` (a content string ends in `"}` and a reply in a number).
local TOMBSTONE_END = ',"removed":true}'
local function is_removed(message)
  return string.sub(message, -#TOMBSTONE_END) == TOMBSTONE_END
end

-- Release the lease if `fence` holds it (`lease` is meta's lease field, read by the caller),
-- and wake one queued turn. The wake list holds one token at most: a token no turn has taken
-- yet only gets a fresh TTL (one call instead of a push, a trim and a TTL).
local function release(lease, fence, wake_ms)
  if lease ~= fence then
    return false
  end
  redis.call('HDEL', KEYS[2], 'lease', 'lease_until')
  if redis.call('PEXPIRE', KEYS[5], wake_ms) == 0 then
    redis.call('LPUSH', KEYS[5], fence)
    redis.call('PEXPIRE', KEYS[5], wake_ms)
  end
  return true
end

-- A summary step is due once `summary_every` messages have left the prompt window unsummarised
-- (`outside_upto` is the seq of the newest message outside the window).
local function summary_due(outside_upto, summary_upto, summary_every)
  return outside_upto - (tonumber(summary_upto) or 0) >= summary_every and 1 or 0
end

-- The prompt window of the turn whose question is message `seq`: the conversation up to and
-- including that question, never past it. Another turn's question is left out unless its reply
-- is in the window too (an unanswered question stays in history, not in prompts), and a reply
-- sits right after its own question, wherever it landed (a late reply after a newer turn's pair
-- still reads as the answer to its question). At most window_messages messages are read; the
-- newest ones within `budget` tokens are kept, the question always. Returns first index, list.
local function prompt_window(seq, window_messages, budget)
  local key, index = locate(seq)
  local elems = {}
  if key == KEYS[1] then
    elems = redis.call('LRANGE', KEYS[1], math.max(0, index - window_messages + 1), index)
  elseif key then
    elems = {redis.call('LINDEX', key, index)}
  end
  local reply_of = {} -- question seq -> its reply, for the replies in the window
  for i = 1, #elems do
    local asked = string.match(elems[i], ',"reply_to":(%d+)}$')
    if asked then
      reply_of[tonumber(asked)] = elems[i]
    end
  end
  local paired, placed = {}, {}
  for i = 1, #elems do
    local message = elems[i]
    local own = tonumber(string.match(message, '^{"seq":(%d+),'))
    local asked = string.match(message, ',"reply_to":(%d+)}$')
    local reply = reply_of[own]
    if asked and placed[tonumber(asked)] then
      -- placed after its question already
    elseif own ~= seq and not reply and string.find(message, '","role":"user","content":', 1, true) then
      -- a question without its reply here: a turn's question (its id maps to "seq:...") is left
      -- out; a user message stored by append() is not a turn's question and stays
      local id = string.match(message, ',"id":"([^"]*)"')
      local known = id and redis.call('HGET', KEYS[4], id)
      if not (known and string.find(known, ':', 1, true)) then
        paired[#paired + 1] = message
      end
    else
      paired[#paired + 1] = message
      if reply then
        paired[#paired + 1] = reply
        placed[own] = true
      end
    end
  end
  local first, total = #paired, 0
  for i = #paired, 1, -1 do
    total = total + tokens_of(paired[i])
    if total > budget and i < #paired then
      break
    end
    first = i
  end
  return first, paired
end
