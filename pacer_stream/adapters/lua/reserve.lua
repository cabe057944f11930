-- reserve: take amount micros from the current allowance generation, atomically.
-- KEYS: 1 allowance, 2 breaker, 3 ledger, 4 timers (one campaign/channel, same hash tag)
-- ARGV: 1 request_id, 2 amount_micros
-- Reply: {allowed 0|1, code, remaining_micros, generation, expires_at_ms, epoch, reason,
--         replayed 0|1}
-- Idempotent by request_id: a retry of an allowed request whose hold is live returns the
-- original result and deducts nothing; once the hold was settled, released or expired the
-- retry is denied with reservation_settled / reservation_released / reservation_expired;
-- another amount is denied idempotency_conflict. Denials are not remembered (nothing was
-- deducted, so deciding a retried denial afresh cannot double-count).
-- Cost: 7 redis.call()s on the allowed path (TIME, ZRANGEBYSCORE, HMGET, GET, GET, HSET,
-- ZADD); no TTL bookkeeping (publish owns the TTLs).
local A, B, L, T = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rid = check_id(ARGV[1], 'request_id')
local amount = parse_micros(ARGV[2], 'amount_micros', false)
local now = now_ms()

reclaim(L, T, now)

local field = 'r:' .. rid
local l = redis.call('HMGET', L, 'epoch', 'gen', 'consumed', 'outstanding', field)
local epoch = l[1]
local lgen = tonumber(l[2])
local consumed = tonumber(l[3]) or 0
local outstanding = tonumber(l[4]) or 0
local a = read_allowance(A)

local function remaining_now()
  if a == nil or lgen ~= a.gen then return 0 end
  return max0(a.granted - consumed)
end

local function deny(code, remaining, reason)
  return {0, code, remaining, 0, 0, epoch or '', reason, 0}
end

if epoch and l[5] then
  -- A retry is one only with the same amount (campaign and channel are in the keys); it
  -- never authorises anything the original did not, and a live hold is refused once the
  -- breaker stopped spending (an emergency stop publishes the breaker open).
  local r = unpack_record(l[5])
  if r.amount > 0 and r.amount ~= amount then
    return {0, 'idempotency_conflict', remaining_now(), 0, 0, epoch,
      'request_id was already used with a different amount; a new request needs a new request_id', 0}
  end
  if r.st == 'R' then
    local rb = read_breaker(B)
    if rb == nil or rb.exp <= now then
      return deny('state_stale', 0, 'circuit breaker state is stale (worker has not refreshed it)')
    end
    if rb.state ~= 'closed' then
      return deny('circuit_breaker_open', 0, 'circuit breaker is ' .. rb.state)
    end
    return {1, 'ok', r.rem, r.gen, r.exp, epoch, 'replayed: reservation already granted', 1}
  end
  local code, what = 'reservation_expired', 'expired'
  if r.st == 'S' or r.st == 'Z' then
    code, what = 'reservation_settled', 'settled'
  elseif r.st == 'L' then
    code, what = 'reservation_released', 'released'
  end
  return {0, code, remaining_now(), 0, 0, epoch,
    'request_id names a reservation that was already ' .. what .. '; nothing new is authorised', 1}
end

local b = read_breaker(B)
if b == nil then
  return deny('state_stale', 0, 'no circuit breaker state published for this campaign/channel')
end
if b.exp <= now then
  return deny('state_stale', 0, 'circuit breaker state is stale (worker has not refreshed it)')
end
if b.state ~= 'closed' then
  return deny('circuit_breaker_open', 0, 'circuit breaker is ' .. b.state)
end
if a == nil then
  return deny('state_stale', 0, 'no spend allowance published for this campaign/channel')
end
if a.exp <= now then
  return deny('state_stale', 0, 'spend allowance expired (worker has not refreshed it)')
end
if not epoch or lgen ~= a.gen then
  return deny('state_stale', 0, 'ledger does not match the published allowance')
end

local remaining = max0(a.granted - consumed)
if amount > remaining then
  return deny(a.limit, remaining,
    'fast-path allowance exhausted: ' .. fmt(remaining) .. ' micros left, ' .. fmt(amount) .. ' requested')
end

-- consumed + amount <= granted <= 2^53-1 and outstanding <= the largest gross ever
-- published (each generation is published net of it), so both sums are exact.
local exp = now + a.res_ttl
local rem = remaining - amount
redis.call('HSET', L, 'consumed', fmt(consumed + amount), 'outstanding', fmt(outstanding + amount),
  field, pack_record({
    st = 'R', amount = amount, gen = a.gen, exp = exp, rem = rem, actual = 0, refunded = 0, excess = 0,
  }))
redis.call('ZADD', T, fmt(exp), 'x:' .. rid, fmt(exp + a.retention), 'g:' .. rid)
return {1, 'ok', rem, a.gen, exp, epoch, 'reserved from fast-path allowance', 0}
