/* eslint-disable */
// Redis Lua scripts of the rate limiter (kept in TypeScript so the build ships them).

export const SLIDING_WINDOW_LUA = String.raw`
-- Exact sliding-window counters, all checked and charged in one atomic step.
-- KEYS: per counter a log (ZSET of "<request>:<amount>" scored by time) and its running sum.
-- ARGV: window_ms, member, then per counter: limit, amount.
-- Returns {admitted, retry_ms, failing_counter, remaining_1, reset_ms_1, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local member = ARGV[2]
local n = #KEYS / 2
local sums = {}
local out = {1, 0, 0}
local function amount_of(m) return tonumber(string.match(m, ':(%d+)$')) or 0 end
for i = 1, n do
  local log, sumkey = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, amount = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local expired = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
  local sum = tonumber(redis.call('GET', sumkey) or '0')
  if #expired > 0 then
    for _, m in ipairs(expired) do sum = sum - amount_of(m) end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  end
  if sum < 0 or redis.call('ZCARD', log) == 0 then sum = 0 end
  if #expired > 0 then redis.call('SET', sumkey, sum, 'PX', window + 1000) end
  sums[i] = sum
  local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  local reset = 0
  if #oldest == 2 then reset = tonumber(oldest[2]) + window - now end
  out[2 + 2 * i] = math.max(limit - sum - amount, 0)
  out[3 + 2 * i] = reset
  if sum + amount > limit and out[1] == 1 then
    out[1] = 0
    out[3] = i
    if amount > limit then
      out[2] = -1
    else
      local need = sum + amount - limit
      local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
      local freed = 0
      for j = 1, #entries, 2 do
        freed = freed + amount_of(entries[j])
        if freed >= need then out[2] = tonumber(entries[j + 1]) + window - now + 1; break end
      end
    end
  end
end
if out[1] == 1 then
  for i = 1, n do
    local amount = tonumber(ARGV[2 + 2 * i])
    if amount > 0 then
      redis.call('ZADD', KEYS[2 * i - 1], now, member .. ':' .. amount)
      redis.call('SET', KEYS[2 * i], sums[i] + amount, 'PX', window + 1000)
      redis.call('PEXPIRE', KEYS[2 * i - 1], window + 1000)
    end
  end
end
return out
`;

export const CORRECT_LUA = String.raw`
-- Replaces a request's estimate with its actual amount, keeping its place in time.
-- KEYS: per counter a log and its sum. ARGV: request id, then per counter: estimated, actual.
local id = ARGV[1]
for i = 1, #KEYS / 2 do
  local log, sumkey = KEYS[2 * i - 1], KEYS[2 * i]
  local estimated, actual = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local old = id .. ':' .. estimated
  local score = redis.call('ZSCORE', log, old)
  if score and estimated ~= actual then
    redis.call('ZREM', log, old)
    if actual > 0 then redis.call('ZADD', log, score, id .. ':' .. actual) end
    if redis.call('EXISTS', sumkey) == 1 then redis.call('INCRBY', sumkey, actual - estimated) end
  end
end
return 1
`;
