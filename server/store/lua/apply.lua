-- Apply one batch of adds: the rule of server/state.py apply_batch, atomically, in Redis.
--
-- Redis runs a script to its end or not at all, but it has no rollback: so every
-- check is made first (phase 1), and only then is anything written (phase 2).
-- Totals never pass through Lua numbers, which are doubles: INCRBY on a scratch
-- key does the 64-bit arithmetic (and refuses overflow), and the exact result is
-- read back as a string.
--
-- KEYS: meta, log, points, added, seen, scratch, then per add: its op key, its undo's op key
-- ARGV: ledger, the last seq this server saw, at, retention (s), stream max length, n, then per add:
--       amount, name, client, session, op, undo ("" for none)
-- Returns per add: {"ok", seq, total} | {"dup", seq} | {"conflict", seq, amount}
--                  | {"zero"} | {"badundo"} | {"overflow"}; or {"lost", ledger} for the whole batch.

local meta, log, points, added, seen, scratch = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ledger, seen, at, retention, maxlen, n =
  ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])

-- The ledger this server serves, and no older than what it has seen: never a new or
-- rewound one in its place (Redis emptied, or restored from an older file).
local stored = redis.call("HGET", meta, "ledger")
if stored ~= ledger then
  return {{"lost", stored or ""}}
end
local seq = tonumber(redis.call("HGET", meta, "seq"))
if seq < seen then
  return {{"lost", stored .. " at update " .. string.format("%d", seq)}}
end

local function split(value)
  local parts = {}
  for part in string.gmatch(value, "%S+") do parts[#parts + 1] = part end
  return parts
end

local function negate(amount)
  if string.sub(amount, 1, 1) == "-" then return string.sub(amount, 2) end
  return "-" .. amount
end

redis.call("SET", scratch, redis.call("HGET", meta, "total"))
local fresh, results, writes = {}, {}, {}

-- Phase 1: decide every add; write nothing but the scratch total.
for i = 0, n - 1 do
  local a = 7 + i * 6
  local amount, name, client, session, op, undo =
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local opkey, undokey = KEYS[7 + i * 2], KEYS[8 + i * 2]
  local undone = nil
  if undo ~= "" then undone = fresh[undokey] or redis.call("GET", undokey) end
  local undoes = ""
  if undone then undoes = split(undone)[1] end
  local prior = nil
  if op ~= "" then prior = fresh[opkey] or redis.call("GET", opkey) end
  if prior then
    local p = split(prior)
    if p[2] ~= amount or (p[3] or "") ~= undoes then
      results[i + 1] = {"conflict", p[1], p[2]}
    else
      results[i + 1] = {"dup", p[1]}
    end
  elseif amount == "0" then
    results[i + 1] = {"zero"}
  elseif undo ~= "" and (not undone or split(undone)[2] ~= negate(amount)) then
    results[i + 1] = {"badundo"}
  else
    local ok = redis.pcall("INCRBY", scratch, amount)
    if type(ok) == "table" and ok.err then
      results[i + 1] = {"overflow"}
    else
      seq = seq + 1
      local id = string.format("%d", seq)
      local total = redis.call("GET", scratch)
      results[i + 1] = {"ok", id, total}
      if op ~= "" then fresh[opkey] = id .. " " .. amount .. " " .. undoes end
      writes[#writes + 1] = {id, amount, total, name, client, session, op, undoes, opkey}
    end
  end
end

-- Phase 2: write what was decided.
for _, w in ipairs(writes) do
  local id, amount, total, name, client, session, op, undoes, opkey =
    w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9]
  local contribution = ""
  if session ~= "" then
    local ok = redis.pcall("HINCRBY", added, session, amount)
    if type(ok) == "table" and ok.err then
      -- A contribution is shown, never refused: it stays at the edge of the range.
      if string.sub(amount, 1, 1) == "-" then
        redis.call("HSET", added, session, "-9223372036854775808")
      else
        redis.call("HSET", added, session, "9223372036854775807")
      end
    end
    contribution = redis.call("HGET", added, session)
    redis.call("HSET", seen, session, at)
  end
  if op ~= "" then
    redis.call("SET", opkey, id .. " " .. amount .. " " .. undoes, "EX", retention)
  end
  redis.call("XADD", log, "MAXLEN", "~", maxlen, id .. "-0",
    "t", "u", "at", at, "amount", amount, "total", total, "name", name, "client", client,
    "session", session, "op", op, "undoes", undoes, "added", contribution)
end

if #writes > 0 then
  local last = writes[#writes]
  redis.call("HSET", meta, "seq", last[1], "total", last[3])
  -- One point a second for charts: a later batch in the same second replaces it.
  local second = string.format("%d", math.floor(tonumber(at)))
  local previous = redis.call("HGET", meta, "point")
  if previous and split(previous)[1] == second then
    redis.call("ZREM", points, split(previous)[2])
  end
  local member = last[1] .. ":" .. last[3]
  redis.call("ZADD", points, at, member)
  redis.call("HSET", meta, "point", second .. " " .. member)
end
redis.call("DEL", scratch)
return results
