//! The access index's Lua scripts. Each works on one person's keys (one hash tag, one
//! Redis Cluster slot), atomically.
//!
//! A group of refusals lives in the person's groups hash as fields of its 16-byte id:
//! `<id>` the entry as shown (its first refusal), `<id>n` the count, `<id>f` and `<id>l`
//! its first and latest refusal (ms), `<id>z` the latest refusal's encoded time, `<id>k`
//! its key in the list, `<id>m` what it counted per chain (`chain:sequence:ms,…`).

/// Counts refusals into their group. KEYS: groups hash, groups' keys, groups' keys by
/// latest refusal. ARGV: the group id, the most chains to remember, then per refusal in
/// trail order: chain id (text without `:` or `,`), sequence, time (ms), its key as the
/// group's first, the entry it would show as the first, its encoded time. A refusal at or
/// below its chain's counted sequence was counted already. Returns 1 if anything changed.
pub(super) const ABSORB: &str = r"
local h, id = KEYS[1], ARGV[1]
local function get(suffix) return redis.call('HGET', h, id .. suffix) end
local function int(n) return string.format('%.0f', n) end
local marks = {}
for chain, seq, ms in string.gmatch(get('m') or '', '([^:,]+):(%d+):(%d+)') do
  marks[chain] = {tonumber(seq), tonumber(ms)}
end
local before = tonumber(get('n') or '0')
local count = before
local first = tonumber(get('f') or '-1')
local last = tonumber(get('l') or '-1')
local new_first, new_last
for i = 3, #ARGV, 6 do
  local chain, seq, ms = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local mark = marks[chain]
  if not mark or mark[1] < seq then
    marks[chain] = {seq, math.max(ms, mark and mark[2] or ms)}
    count = count + 1
    if first < 0 or ms < first then first = ms; new_first = i end
    if ms > last then last = ms; new_last = i end
  end
end
if count == before then return 0 end
local kept = {}
for chain, mark in pairs(marks) do kept[#kept + 1] = {chain, mark[1], mark[2]} end
table.sort(kept, function(a, b) return a[3] > b[3] end)
local parts = {}
for i = 1, math.min(#kept, tonumber(ARGV[2])) do
  parts[i] = kept[i][1] .. ':' .. int(kept[i][2]) .. ':' .. int(kept[i][3])
end
redis.call('HSET', h, id .. 'm', table.concat(parts, ','), id .. 'n', int(count),
  id .. 'f', int(first), id .. 'l', int(last))
local key = get('k')
if new_first then
  local old = key
  key = ARGV[new_first + 3]
  redis.call('HSET', h, id, ARGV[new_first + 4], id .. 'k', key)
  if old and old ~= key then
    redis.call('ZREM', KEYS[2], old)
    redis.call('ZREM', KEYS[3], old)
  end
end
if new_last then redis.call('HSET', h, id .. 'z', ARGV[new_last + 5]) end
redis.call('ZADD', KEYS[2], 0, key)
redis.call('ZADD', KEYS[3], int(last), key)
return 1
";

/// Trims one person's part. KEYS: accesses, groups' keys, groups' keys by latest
/// refusal, groups hash, newest dropped, arrival log (which expires with the rest).
/// ARGV: retention cutoff (ms), its key bytes (the first kept), accesses bound, groups
/// bound, expiry (ms since the epoch; 0: none).
pub(super) const TIDY: &str = r"
local function ms_of(key)
  local v = 0
  for i = 1, 8 do v = v * 256 + string.byte(key, i) end
  return v
end
local function drop(key)
  local id = string.sub(key, 10)
  redis.call('ZREM', KEYS[2], key)
  redis.call('ZREM', KEYS[3], key)
  redis.call('HDEL', KEYS[4], id, id .. 'n', id .. 'f', id .. 'l', id .. 'm', id .. 'k',
    id .. 'z')
end
local cut = 0
redis.call('ZREMRANGEBYLEX', KEYS[1], '-', '(' .. ARGV[2])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over > 0 then
  cut = ms_of(redis.call('ZRANGE', KEYS[1], over - 1, over - 1)[1])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])) do
  drop(key)
end
over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, over - 1, 'WITHSCORES')
  for i = 1, #oldest, 2 do
    drop(oldest[i])
    cut = math.max(cut, tonumber(oldest[i + 1]))
  end
end
if cut > tonumber(redis.call('GET', KEYS[5]) or '0') then
  redis.call('SET', KEYS[5], string.format('%.0f', cut))
end
if ARGV[5] ~= '0' then
  for i = 1, #KEYS do
    redis.call('PEXPIREAT', KEYS[i], ARGV[5], 'GT')
    redis.call('PEXPIREAT', KEYS[i], ARGV[5], 'NX')
  end
end
return 0
";

/// Reads a page. KEYS as for TIDY. ARGV: upper bound (`+`, or `(` and the cursor), the
/// accesses' lower bound (`[` and the retention's first key), how many of each kind,
/// retention cutoff (ms). Returns the accesses' members; per group its key, entry, count
/// and latest refusal's time; and the newest dropped (`` for none). A group whose latest
/// refusal left the retention is skipped.
pub(super) const PAGE: &str = r"
local n = tonumber(ARGV[3])
local cutoff = tonumber(ARGV[4])
local singles = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, n)
local groups = {}
local upper = ARGV[1]
while #groups < 4 * n do
  local keys = redis.call('ZREVRANGEBYLEX', KEYS[2], upper, '-', 'LIMIT', 0, n)
  for _, key in ipairs(keys) do
    local id = string.sub(key, 10)
    local last = redis.call('ZSCORE', KEYS[3], key)
    local entry = redis.call('HGET', KEYS[4], id)
    if last and entry and tonumber(last) > cutoff and #groups < 4 * n then
      groups[#groups + 1] = key
      groups[#groups + 1] = entry
      groups[#groups + 1] = redis.call('HGET', KEYS[4], id .. 'n') or '0'
      groups[#groups + 1] = redis.call('HGET', KEYS[4], id .. 'z') or ''
    end
  end
  if #keys < n then break end
  upper = '(' .. keys[#keys]
end
return {singles, groups, redis.call('GET', KEYS[5]) or ''}
";

/// Adds an access kept on its own and, only if it was not there yet, logs its key in the
/// person's arrival log (see `super::arrivals`). KEYS: accesses, arrival log. ARGV: the
/// member (key + encoded access), the key, the most entries the log keeps (about).
pub(super) const ADD_SINGLE: &str = r"
if redis.call('ZADD', KEYS[1], 0, ARGV[1]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'k', ARGV[2])
end
return 0
";

/// Reads a person's arrival log. KEYS: accesses, arrival log. ARGV: the id to read after
/// (`-`: the last id only), how many. Returns per entry its id and the access's member
/// (`` if the access left the index); for `-`, the last id (`0-0` for an empty log).
pub(super) const ARRIVALS: &str = r"
if ARGV[1] == '-' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if last then return {last[1]} end
  return {'0-0'}
end
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[2], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])) do
  local key = e[2][2]
  local m = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. key, '+', 'LIMIT', 0, 1)[1]
  out[#out + 1] = e[1]
  if m and string.sub(m, 1, #key) == key then out[#out + 1] = m else out[#out + 1] = '' end
end
return out
";
