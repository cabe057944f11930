-- publish_breaker (worker only): set the breaker state alone, e.g. the moment it opens.
-- KEYS: 1 breaker
-- ARGV: 1 state (closed | open | half_open), 2 ttl_ms
-- Reply: {expires_at_ms, now_ms}
-- An OPEN breaker denies every reserve at once, whatever allowance is left; CLOSED lets
-- the current allowance (if still fresh) be used again.
local B = KEYS[1]
local state = ARGV[1]
if state ~= 'closed' and state ~= 'open' and state ~= 'half_open' then
  fail('INVALID_ARGUMENT', 'breaker_state must be closed, open or half_open')
end
local ttl = parse_int(ARGV[2], 'ttl_ms', nil)
local now = now_ms()
local exp = now + ttl
redis.call('SET', B, table.concat({'b1', state, fmt(exp), fmt(now)}, '|'), 'PX',
  fmt(max0(ttl) + KEY_GRACE_MS))
return {exp, now}
