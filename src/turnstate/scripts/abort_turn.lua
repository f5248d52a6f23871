-- abort_turn: give up a turn's lease without a reply (the model call failed). The user message
-- stays, unanswered; a retry with the same message id resumes the turn.
-- ARGV: 1 fence  2 wake ms
-- Returns 1 if the lease was released, 0 if this turn no longer held it.

local held = redis.call('HGET', KEYS[2], 'lease') == ARGV[1]
release(ARGV[1], tonumber(ARGV[2]))
return held and 1 or 0
