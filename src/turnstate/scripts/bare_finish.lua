-- bare_finish: the benchmark's baseline for storing a reply (the article pushes it with a plain
-- LPUSH; here it is capped and its TTL renewed too, so the baseline does what a turn must).
-- The baseline's first step is article_update_chat.lua. Runs without _lib.lua.
-- KEYS: 1 the chat List
-- ARGV: 1 reply (JSON)  2 max messages kept  3 ttl seconds
-- Returns the list's length before the trim.

local len = redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return len
