-- Create a new, empty ledger (tally-server init), unless one is there already.
--
-- KEYS: meta
-- ARGV: ledger id, key
-- Returns: 1 if created, 0 if a ledger was there (nothing is changed then).
local meta = KEYS[1]
if redis.call("EXISTS", meta) == 1 then return 0 end
redis.call("HSET", meta, "ledger", ARGV[1], "epoch", 1, "seq", 0, "total", 0, "digest", ARGV[1], "key", ARGV[2])
return 1
