-- begin_turn: store the user message (once per client message id), take the session's lease
-- under the concurrency policy, and return the prompt context, in one atomic step.
-- ARGV: 1 body  2 message id  3 policy  4 lease ms  5 max messages  6 window messages
--       7 window tokens  8 ttl ms  9 summary every
-- Returns {'busy', wait ms} or
--   {status, seq, fence, summary, summary upto, due, reply, window...}
--   status: 'new' | 'resumed' (id stored before, unanswered) | 'answered' (reply is set)

local now = now_ms()
local seq, reply_seq
local prior = redis.call('HGET', KEYS[4], ARGV[2])
if prior then
  seq, reply_seq = parse_id(prior)
end

local status, fence, reply = 'answered', 0, ''
if reply_seq then
  reply = find(reply_seq)
else
  if ARGV[3] ~= 'interleave' then
    local lease = redis.call('HMGET', KEYS[2], 'lease', 'lease_until')
    if lease[1] and tonumber(lease[2]) > now then
      return {'busy', tonumber(lease[2]) - now}
    end
    fence = redis.call('HINCRBY', KEYS[2], 'fence', 1)
    redis.call('HSET', KEYS[2], 'lease', fence, 'lease_until', now + tonumber(ARGV[4]))
  end
  if seq then
    status = 'resumed'
  else
    status = 'new'
    seq = push(ARGV[1], tonumber(ARGV[5]), now)
    redis.call('HSET', KEYS[4], ARGV[2], seq)
  end
  touch(tonumber(ARGV[8]))
end

local meta = redis.call('HMGET', KEYS[2], 'summary', 'summary_upto', 'summary_tokens')
local out = {status, seq, fence, meta[1] or '', tonumber(meta[2]) or 0, summary_due(tonumber(ARGV[9])), reply}

-- The window: the newest messages, at most ARGV[6] of them and within the token budget left
-- after the summary; the newest message is always included.
local elems = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[6]), -1)
local budget = tonumber(ARGV[7]) - (tonumber(meta[3]) or 0)
local first, total = #elems, 0
for i = #elems, 1, -1 do
  total = total + tonumber(string.match(elems[i], '^{"seq":%d+,"ts":%d+,"tokens":(%d+)'))
  if total > budget and i < #elems then
    break
  end
  first = i
end
for i = first, #elems do
  out[#out + 1] = elems[i]
end
return out
