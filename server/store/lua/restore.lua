-- Carry a rewound ledger on from the newest history any server saw, in a new epoch (the repair's
-- leader runs this once per round; see server/repair.py).
--
-- The stream starts afresh (dashboards resynchronise from a snapshot in the new epoch); the total,
-- seq and fingerprint are those of the base, so nothing any server saw is lost from the total.
--
-- KEYS: meta, log, points, rewound, repair, repaired
-- ARGV: round, ledger, epoch, seq, total, digest, key, from epoch, the seq the store was found at, at
-- Returns: 1 if carried on now, 2 if this round was already planned, 0 if the round is not the one under way.
local meta, log, points, rewound, repair, repaired = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local round, ledger, epoch, seq, total, digest, key, from_epoch, found, at =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local mark = redis.call("GET", rewound)
if not mark or string.sub(mark, 1, #round + 1) ~= round .. "\t" then return 0 end
if redis.call("HGET", repair, "round") == round then return 2 end
redis.call("DEL", log, meta, repaired)
redis.call("HSET", meta, "ledger", ledger, "epoch", epoch, "seq", seq, "total", total, "digest", digest,
  "key", key, "point", string.format("%d", math.floor(tonumber(at))) .. " " .. seq .. ":" .. total)
redis.call("ZADD", points, at, seq .. ":" .. total)
redis.call("DEL", repair)
redis.call("HSET", repair, "round", round, "ledger", ledger, "epoch", epoch, "from_epoch", from_epoch,
  "seq", seq, "total", total, "digest", digest, "found", found)
return 1
