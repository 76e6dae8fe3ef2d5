-- The history's points at given moments: for each moment, the latest point at or before it, each point
-- once. One script, not one command a moment: a page of 500 points is one round trip and one flat reply
-- for the server to read, not 500 commands to build and 500 replies to parse on its event loop.
--
-- KEYS: points (sorted set: "seq:total" -> at)
-- ARGV: the moments, ascending (as repr'd floats)
-- Returns: {member, at, member, at, ...}, oldest first
local out, last = {}, false
for i = 1, #ARGV do
  local found = redis.call("ZREVRANGEBYSCORE", KEYS[1], ARGV[i], "-inf", "WITHSCORES", "LIMIT", 0, 1)
  if found[1] and found[1] ~= last then
    out[#out + 1] = found[1]
    out[#out + 1] = found[2]
    last = found[1]
  end
end
return out
