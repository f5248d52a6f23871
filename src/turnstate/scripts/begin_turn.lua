-- begin_turn: store the user message (once per client message id), take the session's lease
-- under the concurrency policy, and return the prompt context, in one atomic step.
-- ARGV: 1 body  2 message id  3 policy  4 settings (see settings() in _lib.lua)
-- Returns {'busy', wait ms} or
--   {status, seq, fence, summary, summary upto, due, reply, window...}
--   status: 'new' | 'resumed' (id stored before, unanswered) | 'answered' (reply is set)
-- A retry by the turn that holds the lease (its reply was lost) gets that lease back: same fence.

local lease_ms, max_messages, window_messages, window_tokens, ttl_ms, summary_every = settings(ARGV[4])
local now = now_ms()
local seq, reply_seq
local prior = redis.call('HGET', KEYS[4], ARGV[2])
if prior then
  seq, reply_seq = parse_id(prior)
end
local last, last_fence, lease, lease_until, lease_id, summary, summary_upto, summary_tokens =
  meta('seq', 'fence', 'lease', 'lease_until', 'lease_id', 'summary', 'summary_upto', 'summary_tokens')
last = tonumber(last) or 0

local status, fence, reply = 'answered', 0, ''
if reply_seq then
  reply = find(reply_seq)
else
  local changed = {}
  if ARGV[3] ~= 'interleave' then
    local held = lease and tonumber(lease_until) > now
    if held and seq and lease_id == ARGV[2] then
      -- This turn holds the lease already: its caller lost the reply (a dropped connection) and
      -- asks again. It gets the same fence rather than waiting for its own lease to expire.
      fence = tonumber(lease)
      changed = {'lease_until', now + lease_ms}
    elseif held then
      return {'busy', tonumber(lease_until) - now}
    else
      fence = (tonumber(last_fence) or 0) + 1
      changed = {'fence', fence, 'lease', fence, 'lease_until', now + lease_ms, 'lease_id', ARGV[2]}
    end
  end
  if seq then
    status = 'resumed'
  else
    status = 'new'
    last = last + 1
    seq = last
    push(ARGV[1], seq, max_messages, now)
    changed[#changed + 1] = 'seq'
    changed[#changed + 1] = seq
    redis.call('HSET', KEYS[4], ARGV[2], seq .. ':') -- the colon marks a turn's question
  end
  if #changed > 0 then
    redis.call('HSET', KEYS[2], unpack(changed))
  end
  touch(ttl_ms)
end

local first, window = prompt_window(seq, window_messages, window_tokens - (tonumber(summary_tokens) or 0))
local due = summary_due(last - window_messages, summary_upto, summary_every)
local out = {status, seq, fence, summary or '', tonumber(summary_upto) or 0, due, reply}
for i = first, #window do
  out[#out + 1] = window[i]
end
return out
