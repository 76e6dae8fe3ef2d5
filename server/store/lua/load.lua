-- Everything a server needs to start following, in one consistent view.
--
-- KEYS: meta, log, servers, added, rewound, repair
-- ARGV: prefix, how many recent stream entries
-- Returns: {meta fields (flat), last stream id, recent entries (newest first), clients of live servers (flat),
--           contributions (flat), the rewound mark ("" if none), the last repair (flat)}
local meta, log, servers, added, rewound, repair = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local prefix, count = ARGV[1], ARGV[2]
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local last = redis.call("XREVRANGE", log, "+", "-", "COUNT", 1)
local last_id = "0-0"
if #last > 0 then last_id = last[1][1] end
local clients = {}
for _, server in ipairs(redis.call("ZRANGEBYSCORE", servers, now, "+inf")) do
  local entries = redis.call("HGETALL", prefix .. "clients:" .. server)
  for i = 2, #entries, 2 do clients[#clients + 1] = entries[i] end
end
return {
  redis.call("HGETALL", meta),
  last_id,
  redis.call("XREVRANGE", log, "+", "-", "COUNT", count),
  clients,
  redis.call("HGETALL", added),
  redis.call("GET", rewound) or "",
  redis.call("HGETALL", repair),
}
