-- pacer-stream fast path: helpers shared by every script.
--
-- Redis cannot `require` inside a script, so the Python loader prepends this file to
-- each script before SCRIPT LOAD (the SHA is taken over the combined text).
--
-- Conventions:
-- * Money is integer micros, at most 2^53-1 (exact in a Lua double). Numbers are never
--   turned into text with tostring() (that prints 9.007199254741e+15); fmt() does.
-- * Time is Redis server TIME in milliseconds, never a time supplied by a caller.
-- * Caller errors are raised as error replies whose first word is a stable code
--   (INVALID_AMOUNT, INVALID_ARGUMENT, IDEMPOTENCY_CONFLICT).

local MAX_MICROS = 9007199254740991
local MAX_MICROS_TEXT = '9007199254740991'
local MAX_ID_BYTES = 128
local RECLAIM_BATCH_TEXT = '64'
local KEY_GRACE_MS = 60000

local function fail(code, msg)
  error({err = code .. ' ' .. msg})
end

local function fmt(n)
  return string.format('%d', n)
end

local function is_canonical_uint(s)
  return s == '0' or string.find(s, '^[1-9][0-9]*$') ~= nil
end

-- Strict integer micros: ASCII digits only, no sign, no leading zero, no whitespace,
-- no fraction/exponent/hex, not above 2^53-1. Rejects "1.5" "1e3" "0x10" "nan" "inf"
-- "-5" "+5" " 5" "" "007" "9007199254740992".
local function parse_micros(s, what, allow_zero)
  if type(s) ~= 'string' or #s == 0 or #s > #MAX_MICROS_TEXT or not is_canonical_uint(s) then
    fail('INVALID_AMOUNT', what .. ' must be integer micros written as plain decimal digits')
  end
  if #s == #MAX_MICROS_TEXT and s > MAX_MICROS_TEXT then
    fail('INVALID_AMOUNT', what .. ' exceeds 2^53-1 micros')
  end
  local n = tonumber(s)
  if n == nil or n > MAX_MICROS then
    fail('INVALID_AMOUNT', what .. ' exceeds 2^53-1 micros')
  end
  if n == 0 and not allow_zero then
    fail('INVALID_AMOUNT', what .. ' must be positive')
  end
  return n
end

-- Strict signed integer (durations, generations): same rules, optional leading '-'.
local function parse_int(s, what, min)
  if type(s) ~= 'string' or #s == 0 or #s > 17 then
    fail('INVALID_ARGUMENT', what .. ' must be an integer')
  end
  local body = s
  local neg = false
  if string.sub(s, 1, 1) == '-' then
    neg = true
    body = string.sub(s, 2)
  end
  if #body == 0 or #body > #MAX_MICROS_TEXT or not is_canonical_uint(body) or (neg and body == '0') then
    fail('INVALID_ARGUMENT', what .. ' must be an integer')
  end
  if #body == #MAX_MICROS_TEXT and body > MAX_MICROS_TEXT then
    fail('INVALID_ARGUMENT', what .. ' is out of range')
  end
  local n = tonumber(body)
  if neg then n = -n end
  if min ~= nil and n < min then
    fail('INVALID_ARGUMENT', what .. ' must be at least ' .. fmt(min))
  end
  return n
end

local function check_id(s, what)
  if type(s) ~= 'string' or #s == 0 or #s > MAX_ID_BYTES then
    fail('INVALID_ARGUMENT', what .. ' must be 1-' .. fmt(MAX_ID_BYTES) .. ' bytes')
  end
  return s
end

local function check_token(s, what)
  if type(s) ~= 'string' or #s == 0 or #s > 32 or string.find(s, '^[A-Za-z0-9]+$') == nil then
    fail('INVALID_ARGUMENT', what .. ' must be 1-32 letters or digits')
  end
  return s
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(s)
  local out = {}
  for part in string.gmatch(s, '[^|]+') do
    out[#out + 1] = part
  end
  return out
end

-- allowance STRING: a1|gen|granted|exp_ms|res_ttl_ms|retention_ms|limit_code|pub_ms
local function read_allowance(key)
  local s = redis.call('GET', key)
  if not s then return nil end
  local f = split(s)
  if f[1] ~= 'a1' or #f ~= 8 then return nil end
  return {
    gen = tonumber(f[2]), granted = tonumber(f[3]), exp = tonumber(f[4]),
    res_ttl = tonumber(f[5]), retention = tonumber(f[6]), limit = f[7], pub = tonumber(f[8]),
  }
end

-- breaker STRING: b1|state|exp_ms|pub_ms
local function read_breaker(key)
  local s = redis.call('GET', key)
  if not s then return nil end
  local f = split(s)
  if f[1] ~= 'b1' or #f ~= 4 then return nil end
  return {state = f[2], exp = tonumber(f[3]), pub = tonumber(f[4])}
end

-- reservation record (ledger field r:<request_id>):
--   status|amount|gen|exp_ms|remaining|actual|refunded|excess|after
-- (remaining = allowance left right after the reserve, replayed to retried reserves;
--  after = allowance left right after the settle/release, replayed to their retries)
-- status: R live, S settled, Z settled late (after expiry/release, or no reservation),
--         L released, X expired (reclaimed)
local function pack_record(r)
  return table.concat({
    r.st, fmt(r.amount), fmt(r.gen), fmt(r.exp), fmt(r.rem),
    fmt(r.actual), fmt(r.refunded), fmt(r.excess), fmt(r.after or 0),
  }, '|')
end

local function unpack_record(s)
  local f = split(s)
  return {
    st = f[1], amount = tonumber(f[2]), gen = tonumber(f[3]), exp = tonumber(f[4]),
    rem = tonumber(f[5]), actual = tonumber(f[6]), refunded = tonumber(f[7]),
    excess = tonumber(f[8]), after = tonumber(f[9] or '0'),
  }
end

local function lget(ledger, field)
  local v = redis.call('HGET', ledger, field)
  if v then return tonumber(v) end
  return nil
end

-- Extend a key's TTL to at least ms from now (never shorten it: records written under an
-- older, longer retention must outlive a newer, shorter one).
local function extend_ttl(key, ms)
  local t = redis.call('PTTL', key)
  if t == -2 or (t >= 0 and t >= ms) then return end
  redis.call('PEXPIRE', key, fmt(ms))
end

-- A live reservation ends without being settled: stop counting it as outstanding and,
-- when it was taken from the current generation, give its amount back.
local function expire_record(ledger, field, cur_gen)
  local s = redis.call('HGET', ledger, field)
  if not s then return end
  local r = unpack_record(s)
  if r.st ~= 'R' then return end
  redis.call('HINCRBY', ledger, 'outstanding', fmt(-r.amount))
  if cur_gen ~= nil and r.gen == cur_gen then
    redis.call('HINCRBY', ledger, 'consumed', fmt(-r.amount))
    r.refunded = r.amount
  end
  r.st = 'X'
  redis.call('HSET', ledger, field, pack_record(r))
end

-- Reclaim expired reservations and forget records past their idempotency window, a
-- bounded batch per call so one call never does unbounded work.
-- The timers ZSET also holds a sentinel member '~' at +inf (written by publish) so it is
-- never empty, never deleted, and keeps the TTL publish gave it: bidder scripts then
-- never need PEXPIRE (and the bidder ACL user does not get it).
local function reclaim(ledger, timers, now)
  local due = redis.call('ZRANGEBYSCORE', timers, '-inf', fmt(now), 'LIMIT', '0', RECLAIM_BATCH_TEXT)
  if #due == 0 then return end
  local cur_gen = lget(ledger, 'gen')
  for _, m in ipairs(due) do
    local kind = string.sub(m, 1, 2)
    local field = 'r:' .. string.sub(m, 3)
    expire_record(ledger, field, cur_gen)
    if kind == 'g:' then
      redis.call('HDEL', ledger, field)
    end
    redis.call('ZREM', timers, m)
  end
end

local function max0(n)
  if n < 0 then return 0 end
  return n
end

-- Remaining allowance of the current generation (0 if no current allowance).
local function remaining_of(a, ledger)
  if a == nil then return 0 end
  local l = redis.call('HMGET', ledger, 'gen', 'consumed')
  if tonumber(l[1]) ~= a.gen then return 0 end
  return max0(a.granted - (tonumber(l[2]) or 0))
end
