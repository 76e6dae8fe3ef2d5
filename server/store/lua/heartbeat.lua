-- Say this server is alive until now + ttl, and announce as left the clients of servers
-- whose time ran out. One server wins each dead one: the ZREM and the events are atomic.
--
-- KEYS: servers (sorted set: server id -> expiry in ms, Redis's clock), meta, log
-- ARGV: server id, ttl (ms), prefix, stream max length
-- Returns: {alive (1 if this server was still registered, 0 if it had been reaped), dead ids...}
local servers, meta, log = KEYS[1], KEYS[2], KEYS[3]
local me, ttl, prefix, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local alive = redis.call("ZSCORE", servers, me) and 1 or 0
redis.call("ZADD", servers, now + ttl, me)
local result = {alive}
for _, dead in ipairs(redis.call("ZRANGEBYSCORE", servers, "-inf", now)) do
  redis.call("ZREM", servers, dead)
  local key = prefix .. "clients:" .. dead
  local seq = redis.call("HGET", meta, "seq") or "0"
  local entries = redis.call("HGETALL", key)
  for i = 2, #entries, 2 do
    redis.call("XADD", log, "MAXLEN", "~", maxlen, seq .. "-*",
      "t", "p", "event", "left", "client", entries[i], "server", dead)
  end
  redis.call("DEL", key)
  result[#result + 1] = dead
end
return result
