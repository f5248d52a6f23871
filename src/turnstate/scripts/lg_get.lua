-- LangGraph get_tuple: ARGV[1] namespace, ARGV[2] checkpoint id or '' for the newest.
-- Returns {member, record, writes JSON} or {} when absent.
local member
if ARGV[2] == '' then
  local newest = redis.call('ZREVRANGEBYLEX', KEYS[2], '(' .. ARGV[1] .. '\1', '(' .. ARGV[1] .. '\0', 'LIMIT', 0, 1)
  if #newest == 0 then return {} end
  member = newest[1]
else
  member = ARGV[1] .. '\0' .. ARGV[2]
end
local record = redis.call('HGET', KEYS[1], member)
if not record then return {} end
return {member, record, redis.call('HGET', KEYS[3], member) or '[]'}
