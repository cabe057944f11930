-- settle: a reservation was used; record what was actually spent.
-- KEYS: 1 allowance, 2 breaker, 3 ledger, 4 timers
-- ARGV: 1 request_id, 2 actual_micros, 3 epoch (from the reservation id)
-- Reply: {status, reserved, actual, refunded, excess, remaining, replayed 0|1}
--   status: settled | settled_late | unknown_epoch
-- actual < reserved: the difference goes back to the allowance if it is still the
-- reservation's generation (a newer generation was published net of the whole
-- reservation, so the difference reaches it through the next publish instead).
-- actual > reserved, or a settle of an expired/released/unknown reservation: the extra is
-- taken from the current allowance down to zero, never below; what does not fit is
-- recorded as excess (ledger field "excess", and in the reply).
-- Idempotent by reservation: a retry returns the stored result and changes nothing.
local A, B, L, T = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rid = check_id(ARGV[1], 'request_id')
local actual = parse_micros(ARGV[2], 'actual_micros', true)
local want_epoch = check_token(ARGV[3], 'epoch')
local now = now_ms()

local epoch = redis.call('HGET', L, 'epoch')
if not epoch or epoch ~= want_epoch then
  return {'unknown_epoch', 0, actual, 0, 0, 0, 0}
end
reclaim(L, T, now)

local a = read_allowance(A)
local gen = lget(L, 'gen')
local field = 'r:' .. rid
local s = redis.call('HGET', L, field)
local r = nil
if s then
  r = unpack_record(s)
  if r.st == 'S' or r.st == 'Z' then
    if r.actual ~= actual then
      fail('IDEMPOTENCY_CONFLICT', 'reservation was already settled with a different amount')
    end
    local status = 'settled'
    if r.st == 'Z' then status = 'settled_late' end
    return {status, r.amount, r.actual, r.refunded, r.excess, r.after, 1}
  end
end

local reserved, refunded, extra = 0, 0, 0
local st
if r ~= nil and r.st == 'R' then
  st = 'S'
  reserved = r.amount
  redis.call('HINCRBY', L, 'outstanding', fmt(-reserved))
  redis.call('ZREM', T, 'x:' .. rid)
  if actual <= reserved then
    if r.gen == gen and reserved > actual then
      refunded = reserved - actual
      redis.call('HINCRBY', L, 'consumed', fmt(-refunded))
    end
  else
    extra = actual - reserved
  end
else
  -- Expired, released, or never known: the money was spent anyway. Charge all of it.
  st = 'Z'
  if r ~= nil then reserved = r.amount end
  extra = actual
end

local excess = 0
if extra > 0 then
  local take = 0
  if a ~= nil and gen == a.gen then
    take = math.min(extra, max0(a.granted - (lget(L, 'consumed') or 0)))
    if take > 0 then
      redis.call('HINCRBY', L, 'consumed', fmt(take))
    end
  end
  excess = extra - take
  if excess > 0 then
    redis.call('HINCRBY', L, 'excess', fmt(excess))
  end
end
if actual > 0 then
  redis.call('HINCRBY', L, 'settled', fmt(actual))
end

local rem = remaining_of(a, L)
local rec = {
  st = st, amount = reserved, gen = gen or 0, exp = now, rem = 0,
  actual = actual, refunded = refunded, excess = excess, after = rem,
}
if r ~= nil then
  rec.gen = r.gen
  rec.exp = r.exp
  rec.rem = r.rem
end
redis.call('HSET', L, field, pack_record(rec))
if r == nil and redis.call('EXISTS', T) == 1 then
  -- Forget this record after the retention window (only if publish created the timers
  -- key: a key created here would have no TTL).
  local retention = 300000
  if a ~= nil then retention = a.retention end
  redis.call('ZADD', T, fmt(now + retention), 'g:' .. rid)
end
local status = 'settled'
if st == 'Z' then status = 'settled_late' end
return {status, reserved, actual, refunded, excess, rem, 0}
