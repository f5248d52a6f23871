-- LangGraph put_writes: merge writes into one checkpoint's entry of the writes hash (KEYS[3]).
-- ARGV[1] member, ARGV[2] JSON array of [task_id, idx, channel, type, b64 value, task_path],
-- ARGV[3] TTL in ms. A write already held for (task_id, idx) is kept unless idx < 0 (special writes).
local held = redis.call('HGET', KEYS[3], ARGV[1])
local rows = {}
if held then rows = cjson.decode(held) end
local at = {}
for i, w in ipairs(rows) do at[w[1] .. '\0' .. tostring(w[2])] = i end
for _, w in ipairs(cjson.decode(ARGV[2])) do
  local k = w[1] .. '\0' .. tostring(w[2])
  local i = at[k]
  if i == nil then
    rows[#rows + 1] = w
    at[k] = #rows
  elseif tonumber(w[2]) < 0 then
    rows[i] = w
  end
end
redis.call('HSET', KEYS[3], ARGV[1], cjson.encode(rows))
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
return #rows
