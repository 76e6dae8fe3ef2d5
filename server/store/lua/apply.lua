-- Apply one batch of adds: the rule of server/state.py apply_batch, atomically, in Redis.
--
-- Redis runs a script to its end or not at all, but it has no rollback: so every
-- check is made first (phase 1), and only then is anything written (phase 2).
-- Lua numbers are doubles, exact only below 2^53: a sum is made in Lua only when
-- both terms and the result are below that (checked, see exact_sum); otherwise
-- INCRBY on a scratch key (or HINCRBY) does the 64-bit arithmetic, refusing
-- overflow, and the exact result is read back as a string. Totals and
-- contributions travel as strings either way.
--
-- Every update carries the history's fingerprint after it: the first 16 hex digits of
-- SHA-1 over "previous|seq|session|op|amount|total", as server/state.py chain() computes it.
--
-- KEYS: meta, log, points, added, seen, scratch, rewound
-- ARGV: ledger, the last seq this server saw, its fingerprint there, at, retention (s), stream max length, n,
--       the key prefix, the adds as one string, mode ("" | "repair": re-applying what a witness kept while the
--       ledger is marked rewound | "touch": always write, so that a WAIT after this script covers earlier writes).
--       The adds: per add amount, name, client, session, op, undo ("" for none), every field followed by a NUL
--       (no field can hold one). One argument, not six an add: packing thousands of arguments cost the server
--       more than the rest of the batch. An add's op key is <prefix>op:<session>:<op>; its value is
--       "seq amount undoes undone_by", "-" for none.
-- Returns per add: {"ok", seq, total, digest, undoes ("" for none)} | {"dup", seq} | {"conflict", seq, amount}
--                  | {"zero"} | {"badundo"} | {"undone", seq} | {"overflow"};
--          or for the whole batch {"lost", what was found} | {"rewound", why}.

local meta, log, points, added, seen, scratch, rewound =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local ledger, saw, saw_digest, at, retention, maxlen, n, prefix, adds, mode =
  ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9], ARGV[10]

local fields, pos = {}, 1
while pos <= #adds do
  local stop = string.find(adds, "\0", pos, true)
  fields[#fields + 1] = string.sub(adds, pos, stop - 1)
  pos = stop + 1
end
if #fields ~= n * 6 then
  return redis.error_reply("apply.lua: " .. #fields .. " fields for " .. n .. " adds")
end

-- A rewound ledger takes no adds until the servers have repaired it (see server/repair.py).
if mode ~= "repair" then
  local why = redis.call("GET", rewound)
  if why then return {{"rewound", why}} end
end

-- The ledger this server serves, and no older than what it has seen: never a new or
-- rewound one in its place (Redis emptied, or restored from an older file).
local stored = redis.call("HGET", meta, "ledger")
if stored ~= ledger then
  return {{"lost", stored or ""}}
end
local seq = tonumber(redis.call("HGET", meta, "seq"))
local digest = redis.call("HGET", meta, "digest") or ledger
if seq < saw then
  return {{"lost", stored .. " at update " .. string.format("%d", seq)}}
end
if saw > 0 and saw_digest ~= "" then
  local there = digest
  if seq > saw then
    there = nil
    local entry = redis.call("XRANGE", log, saw .. "-0", saw .. "-0")
    if #entry > 0 then
      local record = entry[1][2][4]
      -- Ten fields, the last the fingerprint (entries from before fingerprints have nine).
      if record and select(2, string.gsub(record, "%z", "")) == 9 then
        there = string.match(record, "([^%z]*)$")
      end
    end
  end
  if there and there ~= "" and there ~= saw_digest then
    return {{"lost", stored .. " with another history at update " .. string.format("%d", saw)}}
  end
end

local function split(value)
  local parts = {}
  for part in string.gmatch(value, "%S+") do
    if part == "-" then part = "" end
    parts[#parts + 1] = part
  end
  return parts
end

local function negate(amount)
  if string.sub(amount, 1, 1) == "-" then return string.sub(amount, 2) end
  return "-" .. amount
end

local function dash(value)
  if value == nil or value == "" then return "-" end
  return value
end

-- a + b for two integers given as strings, as a string; nil unless every figure is below 2^53 in
-- magnitude, where doubles are exact (a true sum at or past it cannot round back below it).
local EXACT = 9007199254740992
local function exact_sum(a, b)
  local x, y = tonumber(a), tonumber(b)
  if math.abs(x) >= EXACT or math.abs(y) >= EXACT then return nil end
  local sum = x + y
  if math.abs(sum) >= EXACT then return nil end
  return string.format("%d", sum)
end

local total = redis.call("HGET", meta, "total")
local fresh, results, writes, undone = {}, {}, {}, {}

-- Phase 1: decide every add; write nothing but the scratch total (past 2^53 only).
for i = 0, n - 1 do
  local a = 1 + i * 6
  local amount, name, client, session, op, undo =
    fields[a], fields[a + 1], fields[a + 2], fields[a + 3], fields[a + 4], fields[a + 5]
  local opkey = prefix .. "op:" .. session .. ":" .. op
  local undone_value, undokey = nil, nil
  if undo ~= "" then
    undokey = prefix .. "op:" .. session .. ":" .. undo
    undone_value = fresh[undokey] or redis.call("GET", undokey)
  end
  local target = nil
  if undone_value then target = split(undone_value) end
  local undoes = ""
  if target then undoes = target[1] end
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
  elseif undo ~= "" and (not target or target[2] ~= negate(amount)) then
    results[i + 1] = {"badundo"}
  elseif target and (target[4] or "") ~= "" then
    results[i + 1] = {"undone", target[4]}
  else
    local sum = exact_sum(total, amount)
    if sum == nil then
      redis.call("SET", scratch, total)
      local ok = redis.pcall("INCRBY", scratch, amount)
      if not (type(ok) == "table" and ok.err) then sum = redis.call("GET", scratch) end
    end
    if sum == nil then
      results[i + 1] = {"overflow"}
    else
      total = sum
      seq = seq + 1
      local id = string.format("%d", seq)
      digest = string.sub(redis.sha1hex(digest .. "|" .. id .. "|" .. session .. "|" .. op .. "|" .. amount
        .. "|" .. total), 1, 16)
      results[i + 1] = {"ok", id, total, digest, undoes}
      if op ~= "" then fresh[opkey] = id .. " " .. amount .. " " .. dash(undoes) .. " -" end
      if target then
        fresh[undokey] = target[1] .. " " .. target[2] .. " " .. dash(target[3]) .. " " .. id
        undone[undokey] = fresh[undokey]
      end
      writes[#writes + 1] = {id, amount, total, name, client, session, op, undoes, opkey, digest}
    end
  end
end

-- Phase 2: write what was decided.
-- What each session of this batch has added in all, after its adds so far; written once a session.
local contributions, sessions = {}, {}
local function contribute(session, amount)
  local current = contributions[session]
  if current == nil then
    current = redis.call("HGET", added, session) or "0"
    sessions[#sessions + 1] = session
  end
  local sum = exact_sum(current, amount)
  if sum == nil then
    redis.call("HSET", added, session, current)
    local ok = redis.pcall("HINCRBY", added, session, amount)
    if type(ok) == "table" and ok.err then
      -- A contribution is shown, never refused: it stays at the edge of the range.
      if string.sub(amount, 1, 1) == "-" then
        redis.call("HSET", added, session, "-9223372036854775808")
      else
        redis.call("HSET", added, session, "9223372036854775807")
      end
    end
    sum = redis.call("HGET", added, session)
  end
  contributions[session] = sum
  return sum
end

for _, w in ipairs(writes) do
  local id, amount, total, name, client, session, op, undoes, opkey, fingerprint =
    w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10]
  local contribution = ""
  if session ~= "" then contribution = contribute(session, amount) end
  if op ~= "" then
    redis.call("SET", opkey, id .. " " .. amount .. " " .. dash(undoes) .. " -", "EX", retention)
  end
  -- One field for the record (see record_from in redis.py): every server reads every entry.
  redis.call("XADD", log, "MAXLEN", "~", maxlen, id .. "-0", "t", "u", "r",
    at .. "\0" .. amount .. "\0" .. total .. "\0" .. name .. "\0" .. client .. "\0" .. session .. "\0" .. op
    .. "\0" .. undoes .. "\0" .. contribution .. "\0" .. fingerprint)
end
-- An op undone by this batch is marked, so that it is never undone twice (its expiry stays).
for key, value in pairs(undone) do
  redis.call("SET", key, value, "KEEPTTL")
end

-- Each session's contribution, and when it was last seen: once a session, not once an add.
if #sessions > 0 then
  local sums, times = {}, {}
  for _, session in ipairs(sessions) do
    sums[#sums + 1] = session
    sums[#sums + 1] = contributions[session]
    times[#times + 1] = session
    times[#times + 1] = at
  end
  redis.call("HSET", added, unpack(sums))
  redis.call("HSET", seen, unpack(times))
end

if #writes > 0 then
  local last = writes[#writes]
  redis.call("HSET", meta, "seq", last[1], "total", last[3], "digest", last[10])
  -- One point a second for charts: a later batch in the same second replaces it.
  local second = string.format("%d", math.floor(tonumber(at)))
  local previous = redis.call("HGET", meta, "point")
  if previous and split(previous)[1] == second then
    redis.call("ZREM", points, split(previous)[2])
  end
  local member = last[1] .. ":" .. last[3]
  redis.call("ZADD", points, at, member)
  redis.call("HSET", meta, "point", second .. " " .. member)
elseif mode == "touch" then
  redis.call("HINCRBY", meta, "touched", 1)
end
if redis.call("EXISTS", scratch) == 1 then redis.call("DEL", scratch) end
return results
