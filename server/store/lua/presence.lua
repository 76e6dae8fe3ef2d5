-- Record one presence event of this server's clients, in the same stream as updates,
-- so that every server sees joins, leaves and adds in one order.
--
-- KEYS: meta, log, this server's clients hash
-- ARGV: event (joined, left, renamed), client id, client json, server id, stream max length
local meta, log, clients = KEYS[1], KEYS[2], KEYS[3]
local event, id, json, server, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if event == "left" then
  redis.call("HDEL", clients, id)
else
  redis.call("HSET", clients, id, json)
end
local seq = redis.call("HGET", meta, "seq") or "0"
return redis.call("XADD", log, "MAXLEN", "~", maxlen, seq .. "-*",
  "t", "p", "event", event, "client", json, "server", server)
