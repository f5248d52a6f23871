-- article_update_chat: the article's atomic step (its pattern "Atomic Lua"), kept as written
-- there for comparison: store the user message, cap the list, renew its TTL and return the
-- newest messages, all in one script. The list is newest first (LPUSH); callers reverse it.
-- Runs without _lib.lua: it touches one key only.
-- KEYS: 1 the chat List
-- ARGV: 1 message (JSON)  2 window size  3 max messages kept  4 ttl seconds
-- Returns the newest ARGV[2] messages, newest first.

redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
