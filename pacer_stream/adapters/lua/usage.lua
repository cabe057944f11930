-- usage (read only): the accounting of one campaign/channel, for the worker and tests.
-- KEYS: 1 allowance, 2 breaker, 3 ledger, 4 timers
-- Reply: {epoch, generation, granted, consumed, remaining, outstanding, settled, excess,
--         expires_at_ms, quarantine_until_ms, breaker_state, now_ms}
-- Nothing is reclaimed here: outstanding is as of the last write.
local A, B, L, T = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = now_ms()
local a = read_allowance(A)
local b = read_breaker(B)
local granted, exp = 0, 0
if a ~= nil then
  granted = a.granted
  exp = a.exp
end
local state = ''
if b ~= nil then state = b.state end
return {
  redis.call('HGET', L, 'epoch') or '', lget(L, 'gen') or 0, granted,
  lget(L, 'consumed') or 0, remaining_of(a, L), lget(L, 'outstanding') or 0,
  lget(L, 'settled') or 0, lget(L, 'excess') or 0, exp, lget(L, 'q_until') or 0, state,
  now,
}
