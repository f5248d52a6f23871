-- abort_turn: give up a turn's lease without a reply (the model call failed). The user message
-- stays, unanswered; a retry with the same message id resumes the turn.
-- ARGV: 1 fence  2 wake ms  3 ttl ms
-- Returns 1 if the lease was released, 0 if this turn no longer held it.

if release(redis.call('HGET', KEYS[2], 'lease'), ARGV[1], tonumber(ARGV[2])) then
  touch(tonumber(ARGV[3]))
  return 1
end
return 0
