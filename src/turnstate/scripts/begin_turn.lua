-- begin_turn: store the user message (once per client message id), take the session's lease
-- under the concurrency policy, and return the prompt context, in one atomic step.
-- ARGV: 1 body  2 message id  3 policy  4 settings (see settings() in _lib.lua)
-- Returns {'busy', wait ms} or
--   {status, seq, fence, summary, summary upto, due, reply, window...}
--   status: 'new' | 'resumed' (id stored before, unanswered) | 'answered' (reply is set)

local s = settings(ARGV[4])
local now = now_ms()
local seq, reply_seq
local prior = redis.call('HGET', KEYS[4], ARGV[2])
if prior then
  seq, reply_seq = parse_id(prior)
end
local m = meta('seq', 'fence', 'lease', 'lease_until', 'summary', 'summary_upto', 'summary_tokens')
local last = tonumber(m.seq) or 0

local status, fence, reply = 'answered', 0, ''
if reply_seq then
  reply = find(reply_seq)
else
  local changed = {}
  if ARGV[3] ~= 'interleave' then
    local lease_until = tonumber(m.lease_until)
    if m.lease and lease_until > now then
      return {'busy', lease_until - now}
    end
    fence = (tonumber(m.fence) or 0) + 1
    changed = {'fence', fence, 'lease', fence, 'lease_until', now + s.lease_ms}
  end
  if seq then
    status = 'resumed'
  else
    status = 'new'
    last = last + 1
    seq = last
    push(ARGV[1], seq, s.max_messages, now)
    changed[#changed + 1] = 'seq'
    changed[#changed + 1] = seq
    redis.call('HSET', KEYS[4], ARGV[2], seq)
  end
  if #changed > 0 then
    redis.call('HSET', KEYS[2], unpack(changed))
  end
  touch(s.ttl_ms)
end

-- The window: the newest messages, at most window_messages of them and within the token
-- budget left after the summary; the newest message is always included.
local elems = redis.call('LRANGE', KEYS[1], -s.window_messages, -1)
local budget = s.window_tokens - (tonumber(m.summary_tokens) or 0)
local first, total = #elems, 0
for i = #elems, 1, -1 do
  total = total + tokens_of(elems[i])
  if total > budget and i < #elems then
    break
  end
  first = i
end
local due = summary_due(last, m.summary_upto, s.summary_every)
local out = {status, seq, fence, m.summary or '', tonumber(m.summary_upto) or 0, due, reply}
for i = first, #elems do
  out[#out + 1] = elems[i]
end
return out
