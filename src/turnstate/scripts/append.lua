-- append: store system, tool or other messages in order, each once per message id. Within a turn
-- (a fence is given) new messages are refused if a newer turn took the lease (messages stored
-- before are still returned as duplicates), and the lease is renewed.
-- ARGV: 1 fence or ''  2 settings (see settings() in _lib.lua)  then per message: body, message id
-- Returns {'stale'}, or per message three values: 'ok', seq, ts | 'duplicate', stored message, 0

local lease_ms, max_messages, _, _, ttl_ms = settings(ARGV[2])
local last, fence, lease = meta('seq', 'fence', 'lease')
last = tonumber(last) or 0
local known = {}
for i = 3, #ARGV, 2 do
  known[i] = redis.call('HGET', KEYS[4], ARGV[i + 1])
  if not known[i] and ARGV[1] ~= '' and fence ~= ARGV[1] then
    return {'stale'} -- before any write: a script's writes are never undone
  end
end

local now = now_ms()
local first = last
local seq = last
local out = {}
for i = 3, #ARGV, 2 do
  local prior = known[i] or redis.call('HGET', KEYS[4], ARGV[i + 1]) -- or sent twice in this call
  if prior then
    if seq ~= last then
      redis.call('HSET', KEYS[2], 'seq', seq) -- find() reads it
      last = seq
    end
    out[#out + 1], out[#out + 2], out[#out + 3] = 'duplicate', find(parse_id(prior)), 0
  else
    seq = seq + 1
    push(ARGV[i], seq, max_messages, now)
    redis.call('HSET', KEYS[4], ARGV[i + 1], seq)
    out[#out + 1], out[#out + 2], out[#out + 3] = 'ok', seq, now
  end
end
local changed = {}
if seq ~= last then
  changed = {'seq', seq}
end
if ARGV[1] ~= '' and lease == ARGV[1] then
  changed[#changed + 1], changed[#changed + 2] = 'lease_until', now + lease_ms
end
if #changed > 0 then
  redis.call('HSET', KEYS[2], unpack(changed))
end
if seq ~= first or #changed > 0 then
  touch(ttl_ms)
end
return out
