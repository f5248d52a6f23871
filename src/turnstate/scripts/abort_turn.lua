-- abort_turn: give up a turn's lease without a reply (the model call failed). The user message
-- stays, unanswered; a retry with the same message id resumes the turn.
-- ARGV: 1 fence  2 settings (see settings() in _lib.lua)
-- Returns 1 if the lease was released, 0 if this turn no longer held it.

local lease_ms, _, _, _, ttl_ms = settings(ARGV[2])
if release(meta('lease'), ARGV[1], lease_ms) then
  touch(ttl_ms)
  return 1
end
return 0
