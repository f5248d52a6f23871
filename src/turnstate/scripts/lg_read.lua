-- LangGraph: a whole thread, {checkpoints hash as a flat list, writes hash as a flat list}.
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[3])}
