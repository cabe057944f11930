-- breaker (read only): the published breaker state and whether it is still fresh.
-- KEYS: 1 breaker
-- Reply: {state or '', expires_at_ms, now_ms}
local b = read_breaker(KEYS[1])
local now = now_ms()
if b == nil then return {'', 0, now} end
return {b.state, b.exp, now}
