-- summary_work: what the summariser should fold next, read in one consistent step (no write).
-- The summary covers every message up to `summary_upto`; the next step folds the messages after
-- it that have left the prompt window (at most ARGV[2] of them), from the archive and then the
-- hot list, which hold contiguous runs of seq.
-- ARGV: 1 settings (see settings() in _lib.lua)  2 most messages per step
-- Returns {summary, summary upto, target seq, messages (upto < seq <= target)...}

local _, _, window_messages = settings(ARGV[1])
local last, summary, upto = meta('seq', 'summary', 'summary_upto')
last, upto = tonumber(last) or 0, tonumber(upto) or 0
local target = math.min(last - window_messages, upto + tonumber(ARGV[2]))
local out = {summary or '', upto, math.max(target, upto)}
if target <= upto then
  return out
end
local first_hot = last - redis.call('LLEN', KEYS[1]) + 1
local first_archived = first_hot - redis.call('LLEN', KEYS[3])
local from = math.max(upto + 1, first_archived)
if from < first_hot then
  for _, m in ipairs(redis.call('LRANGE', KEYS[3], from - first_archived, math.min(target, first_hot - 1) - first_archived)) do
    out[#out + 1] = m
  end
end
if target >= first_hot then
  for _, m in ipairs(redis.call('LRANGE', KEYS[1], math.max(from, first_hot) - first_hot, target - first_hot)) do
    out[#out + 1] = m
  end
end
return out
