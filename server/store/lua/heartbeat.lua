-- Say this server is alive until now + ttl, announce as left the clients of servers whose time
-- ran out (one server wins each dead one: the ZREM and the events are atomic), and check that
-- the ledger is still the one this server has seen, with at least the history it has seen.
--
-- KEYS: servers (sorted set: server id -> expiry in ms, Redis's clock), meta, log, rewound, repair
-- ARGV: server id, ttl (ms), prefix, stream max length, ledger ("" before the first load), epoch,
--       the last seq this server saw, its fingerprint there
-- Returns: {alive (1 if this server was still registered, 0 if it had been reaped), the ledger's epoch
--           (0: none), the rewound mark ("" if none), the repair round under way ("" if none), dead ids...}
local servers, meta, log, rewound, repair = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local me, ttl, prefix, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local ledger, epoch, saw, saw_digest = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local alive = redis.call("ZSCORE", servers, me) and 1 or 0
redis.call("ZADD", servers, now + ttl, me)

local stored = redis.call("HMGET", meta, "ledger", "epoch", "seq", "digest")
local stored_epoch = tonumber(stored[2] or "0") or 0
if ledger ~= "" and not redis.call("GET", rewound) then
  local why = nil
  local seq = tonumber(stored[3] or "0") or 0
  if not stored[1] then
    why = "the ledger is gone from the store (emptied, or its keys deleted)"
  elseif stored[1] ~= ledger then
    why = "the store now holds another ledger (" .. stored[1] .. ")"
  elseif stored_epoch < epoch then
    why = "the store is back at epoch " .. stored[2] .. ", from before a repair"
  elseif stored_epoch == epoch and seq < saw then
    why = "the store ends at update " .. stored[3] .. ", but update " .. string.format("%d", saw) .. " was seen"
  elseif stored_epoch == epoch and saw > 0 and saw_digest ~= "" then
    local there = stored[4]
    if seq > saw then
      there = nil
      local entry = redis.call("XRANGE", log, saw .. "-0", saw .. "-0")
      if #entry > 0 and entry[1][2][4] and select(2, string.gsub(entry[1][2][4], "%z", "")) == 9 then
        there = string.match(entry[1][2][4], "([^%z]*)$")
      end
    end
    if there and there ~= saw_digest then
      why = "the store holds another history at update " .. string.format("%d", saw)
    end
  end
  if why then
    -- round, since (ms), the seq the store was found at, then why.
    redis.call("SET", rewound, me .. "-" .. now .. "\t" .. now .. "\t" .. string.format("%d", seq) .. "\t" .. why)
  end
end

local result = {alive, stored_epoch, redis.call("GET", rewound) or "", redis.call("HGET", repair, "round") or ""}
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
