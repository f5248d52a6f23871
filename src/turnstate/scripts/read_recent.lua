-- read_recent: the newest messages of the hot list, oldest first, removed ones skipped; what a
-- framework replaying its history reads (the archive is the summariser's, not the prompt's).
-- ARGV: 1 how many (0: the whole hot list)
-- Returns the messages.

local len = redis.call('LLEN', KEYS[1])
local want = tonumber(ARGV[1])
if want == 0 or want > len then
  want = len
end
local newest_first = {}
local stop = len - 1
while #newest_first < want and stop >= 0 do
  local start = math.max(0, stop - (want - #newest_first) + 1)
  local chunk = redis.call('LRANGE', KEYS[1], start, stop)
  for i = #chunk, 1, -1 do
    if not is_removed(chunk[i]) and #newest_first < want then
      newest_first[#newest_first + 1] = chunk[i]
    end
  end
  stop = start - 1
end
local out = {}
for i = #newest_first, 1, -1 do
  out[#out + 1] = newest_first[i]
end
return out
