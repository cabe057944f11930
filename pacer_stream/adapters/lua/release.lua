-- release: a reservation will not be used; give it back.
-- KEYS: 1 allowance, 2 breaker, 3 ledger, 4 timers
-- ARGV: 1 request_id, 2 epoch (from the reservation id)
-- Reply: {status, refunded, remaining, replayed 0|1}
--   status: released | already_settled | expired | unknown | unknown_epoch
-- The amount returns to the allowance only if it is still the reservation's generation.
-- Idempotent: releasing twice returns the first result.
local A, B, L, T = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rid = check_id(ARGV[1], 'request_id')
local want_epoch = check_token(ARGV[2], 'epoch')
local now = now_ms()

local epoch = redis.call('HGET', L, 'epoch')
if not epoch or epoch ~= want_epoch then
  return {'unknown_epoch', 0, 0, 0}
end
reclaim(L, T, now)

local a = read_allowance(A)
local field = 'r:' .. rid
local s = redis.call('HGET', L, field)
if not s then
  return {'unknown', 0, remaining_of(a, L), 0}
end
local r = unpack_record(s)
if r.st == 'L' then
  return {'released', r.refunded, r.after, 1}
elseif r.st == 'S' or r.st == 'Z' then
  return {'already_settled', 0, remaining_of(a, L), 1}
elseif r.st == 'X' then
  return {'expired', 0, remaining_of(a, L), 1}
end

local gen = lget(L, 'gen')
redis.call('HINCRBY', L, 'outstanding', fmt(-r.amount))
redis.call('ZREM', T, 'x:' .. rid)
r.refunded = 0
if r.gen == gen then
  redis.call('HINCRBY', L, 'consumed', fmt(-r.amount))
  r.refunded = r.amount
end
r.st = 'L'
r.after = remaining_of(a, L)
redis.call('HSET', L, field, pack_record(r))
return {'released', r.refunded, r.after, 0}
