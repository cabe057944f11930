-- publish (worker only): write a new allowance generation and the breaker state,
-- atomically, stamped with Redis server time.
-- KEYS: 1 allowance, 2 breaker, 3 ledger, 4 timers
-- ARGV: 1 gross_micros        what the core allows for the slice (NOT net of fast-path use)
--       2 breaker_state       closed | open | half_open
--       3 ttl_ms              allowance + breaker validity (<= 0 only from tests)
--       4 reservation_ttl_ms  lifetime of each reservation taken from this generation
--       5 retention_ms        how long records are remembered for idempotent retries
--       6 generation          explicit generation (fencing) or '' for current + 1
--       7 reported_micros     cumulative fast-path spend of this epoch the core has
--                             already counted, or '' when the worker does not track it
--       8 limit_code          code a denial carries when this allowance is exhausted
--       9 expected_epoch      ledger epoch the publisher last saw, or '' if none
--      10 quarantine_ms       how long to publish 0 after the ledger was lost
--      11 new_epoch           random token for a ledger created by this call
--      12 ledger_ttl_ms       keep the ledger (epoch, totals) at least this long
-- Net allowance = gross - outstanding reservations (every generation) - settled fast-path
-- spend the core has not yet counted (settled - reported), floored at 0; 0 while
-- quarantined. Outstanding reservations of older generations stay funded by their own
-- generation, so they are never counted twice.
-- Reply: {accepted 0|1, generation, net, outstanding, unreported, prev_generation,
--         prev_remaining, settled, excess, epoch, created 0|1, lost 0|1,
--         quarantined 0|1, quarantine_until_ms, expires_at_ms, now_ms}
local A, B, L, T = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local gross = parse_micros(ARGV[1], 'allowance_micros', true)
local state = ARGV[2]
if state ~= 'closed' and state ~= 'open' and state ~= 'half_open' then
  fail('INVALID_ARGUMENT', 'breaker_state must be closed, open or half_open')
end
local ttl = parse_int(ARGV[3], 'ttl_ms', nil)
local res_ttl = parse_int(ARGV[4], 'reservation_ttl_ms', 0)
local retention = parse_int(ARGV[5], 'retention_ms', 1)
local want_gen = nil
if ARGV[6] ~= '' then want_gen = parse_int(ARGV[6], 'generation', 1) end
local reported = nil
if ARGV[7] ~= '' then reported = parse_micros(ARGV[7], 'reported_micros', true) end
local limit = ARGV[8]
if type(limit) ~= 'string' or string.find(limit, '^[a-z_]+$') == nil or #limit > 64 then
  fail('INVALID_ARGUMENT', 'limit_code must be a lowercase code')
end
local expected = ''
if ARGV[9] ~= '' then expected = check_token(ARGV[9], 'expected_epoch') end
local quarantine = parse_int(ARGV[10], 'quarantine_ms', 0)
local new_epoch = check_token(ARGV[11], 'new_epoch')
local ledger_ttl = parse_int(ARGV[12], 'ledger_ttl_ms', 1)
local now = now_ms()

local epoch = redis.call('HGET', L, 'epoch')
local created, lost = 0, 0
if not epoch then
  epoch = new_epoch
  created = 1
  redis.call('HSET', L, 'epoch', epoch, 'gen', '0', 'consumed', '0', 'outstanding', '0',
    'settled', '0', 'excess', '0')
  if expected ~= '' then lost = 1 end
elseif expected ~= '' and expected ~= epoch then
  lost = 1
end
if lost == 1 then
  -- The ledger this publisher knew is gone (Redis restarted empty, failed over without
  -- the data, or evicted it): reservations it held are unknown but may still be spent.
  -- Publish nothing spendable until they have certainly expired and been reported.
  local until_ms = now + quarantine
  if until_ms > (lget(L, 'q_until') or 0) then
    redis.call('HSET', L, 'q_until', fmt(until_ms))
  end
end

reclaim(L, T, now)

local cur_gen = lget(L, 'gen') or 0
local new_gen = cur_gen + 1
if want_gen ~= nil then
  if want_gen <= cur_gen then
    return {0, cur_gen, 0, lget(L, 'outstanding') or 0, 0, cur_gen, 0, lget(L, 'settled') or 0,
      lget(L, 'excess') or 0, epoch, created, lost, 0, lget(L, 'q_until') or 0, 0, now}
  end
  new_gen = want_gen
end

local prev = read_allowance(A)
local prev_gen, prev_remaining = 0, 0
if prev ~= nil then
  prev_gen = prev.gen
  prev_remaining = remaining_of(prev, L)
end
local outstanding = max0(lget(L, 'outstanding') or 0)
local settled = lget(L, 'settled') or 0
local unreported = 0
if reported ~= nil then unreported = max0(settled - reported) end
local net = max0(gross - outstanding - unreported)
local q_until = lget(L, 'q_until') or 0
local quarantined = 0
if q_until > now then
  net = 0
  limit = 'state_stale'
  quarantined = 1
end

local exp = now + ttl
local key_ttl = max0(ttl) + KEY_GRACE_MS
redis.call('SET', A, table.concat({'a1', fmt(new_gen), fmt(net), fmt(exp), fmt(res_ttl),
  fmt(retention), limit, fmt(now)}, '|'), 'PX', fmt(key_ttl))
redis.call('SET', B, table.concat({'b1', state, fmt(exp), fmt(now)}, '|'), 'PX', fmt(key_ttl))
redis.call('HSET', L, 'gen', fmt(new_gen), 'consumed', '0')
-- TTLs are owned here: everything a reserve of this generation writes must outlive the
-- generation's validity + reservation lifetime + retention, and the timers sentinel keeps
-- the timers key alive (and its TTL in place) between reservations.
local keep = max0(ttl) + res_ttl + retention + KEY_GRACE_MS
redis.call('ZADD', T, '+inf', '~')
extend_ttl(T, keep)
if ledger_ttl > keep then keep = ledger_ttl end
extend_ttl(L, keep)
return {1, new_gen, net, outstanding, unreported, prev_gen, prev_remaining, settled,
  lget(L, 'excess') or 0, epoch, created, lost, quarantined, q_until, exp, now}
