//! The Lua scripts of the Redis store. Each is atomic and idempotent, so a pipeline of
//! them can be sent again after a failure. The writes' compare-and-sets take many keys
//! per call: Redis spends most of a small script's time entering and leaving it, so a
//! call per key made Redis's CPU the limit of every rebuild.

/// Step one: compare-and-set record entries, in order. Each entry is a string: the
/// version (`version.rs`), the subjects of this version, a tab, the subjects earlier
/// versions had and this one has not. KEYS: the entries; ARGV: version and subjects per
/// key. Returns `{applied, gone subjects, current subjects}` per key; a write of the
/// stored version is a replay and returns the stored ones so step two can be redone.
const RECORD_CAS: &str = r"
local replies = {}
for i, key in ipairs(KEYS) do
  local version, subjects = ARGV[2 * i - 1], ARGV[2 * i]
  local entry = redis.call('GET', key)
  local current, gone, reply = '', '', nil
  if entry then
    local digits = string.byte(entry, 1) - 96
    local stored = string.sub(entry, 1, digits + 1)
    local tab = string.find(entry, '\t', digits + 2, true)
    current, gone = string.sub(entry, digits + 2, tab - 1), string.sub(entry, tab + 1)
    if stored > version then
      reply = {0, '', ''}
    elseif stored == version then
      reply = {1, gone, current}
    end
  end
  if not reply then
    local set = {}
    for s in string.gmatch(gone, '[^\n]+') do set[s] = true end
    for s in string.gmatch(current, '[^\n]+') do set[s] = true end
    for s in string.gmatch(subjects, '[^\n]+') do set[s] = nil end
    local list = {}
    for s in pairs(set) do list[#list + 1] = s end
    table.sort(list)
    local g = table.concat(list, '\n')
    redis.call('SET', key, version .. subjects .. '\t' .. g)
    reply = {1, g, subjects}
  end
  replies[i] = reply
end
return replies
";

/// Step two: compare-and-set copies of records under one subject, and fields of the
/// person's contribution index, in order (every key has the subject's hash tag). ARGV:
/// five per update: the index of its key in KEYS, the field (record id), the version,
/// then the rest of the value in two parts ('1' live or '0' tombstone and the stored
/// event; or the index's flag and paid month, and nothing). Returns how many it set.
const SUBJECT_CAS: &str = r"
local set = 0
for i = 1, #ARGV, 5 do
  local key, field, version = KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]
  local stored = redis.call('HGET', key, field)
  if not (stored and string.sub(stored, 1, string.byte(stored, 1) - 95) >= version) then
    redis.call('HSET', key, field, version .. ARGV[i + 3] .. ARGV[i + 4])
    set = set + 1
  end
end
return set
";

/// Moves materialized positions forward in generation ARGV[1]; ARGV then holds field,
/// offset pairs. Returns -1 without a marker (flushed), -2 for another generation, 2 when
/// this call completed a rebuild, else 1.
const ADVANCE: &str = r"
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then return -1 end
if gen ~= ARGV[1] then return -2 end
for i = 2, #ARGV, 2 do
  local field = 'p:' .. ARGV[i]
  local stored = redis.call('HGET', KEYS[1], field)
  if (not stored) or stored < ARGV[i + 1] then
    redis.call('HSET', KEYS[1], field, ARGV[i + 1])
  end
end
if redis.call('HGET', KEYS[1], 'state') ~= 'rebuilding' then return 1 end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 't:' then
    local reached = redis.call('HGET', KEYS[1], 'p:' .. string.sub(all[i], 3))
    if (not reached) or reached < all[i + 1] then return 1 end
  end
end
redis.call('HSET', KEYS[1], 'state', 'ready')
return 2
";

/// Starts generation ARGV[2] (clearing) of source ARGV[3] in layout ARGV[4] if the
/// current one is ARGV[1] ('' for none).
const REPLACE_GENERATION: &str = r"
local gen = redis.call('HGET', KEYS[1], 'gen') or ''
if gen ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'state', 'clearing', 'source', ARGV[3],
  'layout', ARGV[4])
return 1
";

/// Deletes KEYS[2..] while generation ARGV[1] is clearing; -1 once it is not.
const CLEAR_KEYS: &str = r"
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1]
  or redis.call('HGET', KEYS[1], 'state') ~= 'clearing' then
  return -1
end
local n = 0
for i = 2, #KEYS do n = n + redis.call('UNLINK', KEYS[i]) end
return n
";

/// Ends the clearing of generation ARGV[1] with targets (field, offset pairs).
const START_REBUILD: &str = r"
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1]
  or redis.call('HGET', KEYS[1], 'state') ~= 'clearing' then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 't:' .. ARGV[i], ARGV[i + 1])
end
if #ARGV > 1 then
  redis.call('HSET', KEYS[1], 'state', 'rebuilding')
else
  redis.call('HSET', KEYS[1], 'state', 'ready')
end
return 1
";

/// Every script, loaded at start and again if Redis lost them.
pub(super) const SOURCES: [&str; 6] = [
    RECORD_CAS,
    SUBJECT_CAS,
    ADVANCE,
    REPLACE_GENERATION,
    CLEAR_KEYS,
    START_REBUILD,
];
/// Indexes into `SOURCES` and `RedisStore::scripts`.
pub(super) const RECORD: usize = 0;
pub(super) const SUBJECT: usize = 1;
pub(super) const ADVANCE_AT: usize = 2;
pub(super) const REPLACE: usize = 3;
pub(super) const CLEAR: usize = 4;
pub(super) const REBUILD: usize = 5;
