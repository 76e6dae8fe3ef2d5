-- End a repair: adds are taken again (the repair's leader runs this once every claimant is done).
--
-- KEYS: rewound, claims, lead, repaired
-- ARGV: round
-- Returns: 1 if ended now, 0 if this round was not the one under way.
local rewound, claims, lead, repaired = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local mark = redis.call("GET", rewound)
if not mark or string.sub(mark, 1, #ARGV[1] + 1) ~= ARGV[1] .. "\t" then return 0 end
redis.call("DEL", rewound, claims, lead, repaired)
return 1
