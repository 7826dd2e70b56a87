"""The Lua side of the reprint index (crawler/dedupe.py: `DedupeIndex`): check-and-insert, and the upgrade
of the per-day layout of earlier versions.

Layout of one period hash (`keys.fp_period(period_days, period)`; `DedupeIndex` documents the periods):
- `n`: documents inserted into the period (the next document number); `c<day>`: of them, on that day;
- `d<num>`: the record: fingerprint (8 bytes), day inserted, length (4 bytes each), id length (2 bytes),
  item id, URL. The day lets a lookup ignore records older than the retention while their period lives;
- `b<t><2 bytes>` for t in 0..3: table t, keyed by the top 12 bits of the fingerprint's 16-bit block t;
  value: 11-byte records, fingerprint (8) and document number (3). Two fingerprints at distance <= 3
  agree on one whole block, so a plain `string.find` of that block's two bytes finds every simhash match;
- `s<3 bytes>`: clause postings keyed by the top 18 bits of the 32-bit clause hash; value: 5-byte records,
  the low 14 bits (2) and the document number (3). Any "clauses" match shares a clause, so it is found.
Records are concatenated into few fields (a field costs ~60 bytes of overhead in a large hash); 18 bits
keep a lookup's scan short at a million articles. Python (`dedupe.py: layout`) names the fields of a new
article; the upgrade script below names them from the old records, the same way.
"""

# KEYS: the period hashes of the retention window, newest first (KEYS[1]: today's, where inserts go), then
# any an earlier retention (another period length) wrote that still hold days of the window: same layout.
# ARGV: mode ("insert" | "check"), item id, url, the article (`head`: fingerprint (8 bytes), the 4 block
# field names (4 bytes each), then length, clause weight, today, oldest day still in the window, now (s),
# seconds until KEYS[1] expires (4 bytes each) and `first` (2 bytes, below)), clauses (field 4 + low 2 +
# length 2 bytes each, longest first), the index's settings (`settings`: max distance, containment per mille
# (2 bytes each), min shared chars, min chars, retention days, period days (4 bytes each), the length of
# the next key's name (2 bytes), the set of period lengths in use (`keys.fp_lengths`), then the key prefix
# of reprint lists). Few packed arguments, not ~20 numbers: each one costs the client's packing and the
# server's parsing. `first`: how many of the longest clauses carry more than (1000 - per mille)/1000 of the
# weight. An article sharing at least that share of the weight shares one of them (pigeonhole), so a
# lookup reads those clauses' fields only, and the others' only in a period where some article shares
# enough of the first ones to qualify (half of their weight first, when that can rule the article out).
# Returns the document number (0 when not inserted) for a new article, else {reason, original id, original
# url, distance}: the common reply, an integer, is the cheapest to send and parse.
INDEX = """
local mode, item_id, url, head, cpacked = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local fp, bpacked = string.sub(head, 1, 8), string.sub(head, 9, 24)
local len, weight, today, min_day, now, ttl, first_n = struct.unpack('>I4I4I4I4I4I4I2', head, 25)
local maxd, permille, min_shared, min_chars, retention, period_days, lk, pos0 =
  struct.unpack('>I2I2I4I4I4I4I2', ARGV[6])
local lengths_key, reprints_prefix = string.sub(ARGV[6], pos0, pos0 + lk - 1), string.sub(ARGV[6], pos0 + lk)
local find, sunpack = string.find, struct.unpack  -- (locals: the scans below call them per candidate)

local band, rshift = bit.band, bit.rshift
local function popcount(x)  -- in parallel (SWAR): a lookup computes the distance to ~100 candidates at 1M
  x = x - band(rshift(x, 1), 0x55555555)
  x = band(x, 0x33333333) + band(rshift(x, 2), 0x33333333)
  x = band(x + rshift(x, 4), 0x0F0F0F0F)
  x = x + rshift(x, 8)
  return band(x + rshift(x, 16), 0x3F)
end
local hi, lo = struct.unpack('>I4I4', fp)
local bxor = bit.bxor
local function dist(h, l) return popcount(bxor(hi, h)) + popcount(bxor(lo, l)) end
local function bits_upto(x, limit)  -- the bits set in x, or limit + 1 once there are more than limit
  local n = 0
  while x ~= 0 do
    n = n + 1
    if n > limit then return n end
    x = band(x, x - 1)
  end
  return n
end

-- many clauses would overflow unpack's stack: Redis calls in slices
local function hmget(key, names)
  if #names <= 1000 then return redis.call('HMGET', key, unpack(names)) end
  local out = {}
  for i = 1, #names, 1000 do
    local part = redis.call('HMGET', key, unpack(names, i, math.min(i + 999, #names)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

local fields, lows, lens = {}, {}, {}
for t = 1, 4 do fields[t] = string.sub(bpacked, 4 * t - 3, 4 * t) end
local nc = #cpacked / 8
-- every clause's field, low bits and length from one C call per 1000 clauses (a string.sub each: slower;
-- more at once would overflow the Lua stack, where unpack leaves its results)
for from = 1, nc, 1000 do
  local n = math.min(1000, nc - from + 1)
  local all = {sunpack('>' .. string.rep('c4c2H', n), cpacked, (from - 1) * 8 + 1)}
  for i = 1, n do
    local j = from + i - 1
    fields[4 + j], lows[j], lens[j] = all[3 * i - 2], all[3 * i - 1], all[3 * i]
  end
end

local function record(key, num)
  local rec = redis.call('HGET', key, 'd' .. num)
  if not rec then return nil end
  local h, l, day, clen, idlen, pos = struct.unpack('>I4I4I4I4I2', rec)
  if day < min_day then return nil end  -- older than the retention: its period outlives it, the rule not
  return {hi = h, lo = l, day = day, len = clen, id = string.sub(rec, pos, pos + idlen - 1),
          url = string.sub(rec, pos + idlen)}
end

local function scan(vals, j, shared, only)  -- add clause j's length to the articles holding it
  local v, pat = vals[4 + j], lows[j]
  local pos = 1
  while v do
    local p = find(v, pat, pos, true)
    if not p then break end
    if (p - 1) % 5 == 0 then
      local num = sunpack('>I3', v, p + 2)
      if only == nil or only[num] then shared[num] = (shared[num] or 0) + lens[j] end
      pos = p + 5
    else
      pos = p + 1
    end
  end
end
local first_weight = 0
for j = 1, first_n do first_weight = first_weight + lens[j] end
local rest_weight = weight - first_weight
local lookup_fields, block_fields = {}, {}
for i = 1, 4 + first_n do lookup_fields[i] = fields[i] end
for t = 1, 4 do block_fields[t] = fields[t] end
-- The other clauses, when some article is hopeful, in two halves of their weight (longest first): after the
-- first half an article stays hopeful only while what it shares plus the weight still unread can reach the
-- thresholds. A chance match of one long clause (about a lookup in three at 1M articles) then costs half
-- the other fields of its period, not all of them; an article that stays hopeful whatever the first half
-- holds (a reprint, as a rule) has both read in one call.
local split, acc = nc, 0
for j = first_n + 1, nc do
  acc = acc + lens[j]
  if acc * 2 >= rest_weight then split = j; break end
end
local half_left = rest_weight - acc  -- the weight after the first half
local function qualifies(s) return s >= min_shared and s * 1000 >= permille * weight end
local names_cache = {}
local function clause_fields(from, to)  -- the field names of clauses from..to
  local key = from * 65536 + to
  if not names_cache[key] then
    local out = {}
    for j = from, to do out[#out + 1] = fields[4 + j] end
    names_cache[key] = out
  end
  return names_cache[key]
end

-- best match: simhash matches beat clause matches; then smaller distance / larger share.
local best, first = nil, nil
for k = 1, #KEYS do
  local key = KEYS[k]
  -- the fields a lookup needs; an insert reads the others of KEYS[1] only once it knows it inserts (in a
  -- hash of half a million fields each field read is a cache miss: most of a lookup's time). Once a
  -- fingerprint matched, no clause match can beat it: the blocks alone
  local vals = hmget(key, (best and best.kind == 1) and block_fields or lookup_fields)
  if k == 1 then first = vals end
  for t = 1, 4 do
    local v, pat, off = vals[t], string.sub(fp, 2 * t - 1, 2 * t), 2 * (t - 1)
    local pos = 1
    while v do
      local p = find(v, pat, pos, true)
      if not p then break end
      local start = p - off
      if start >= 1 and (start - 1) % 11 == 0 then
        -- the distance only as far as it matters: a candidate shares one 16-bit block and is almost always
        -- too far already in the other half (the SWAR popcount of both halves for ~100 candidates was a
        -- sixth of a lookup)
        local limit = maxd
        if best and best.kind == 1 then limit = best.dist - 1 end
        local d = bits_upto(bxor(hi, (sunpack('>I4', v, start))), limit)  -- (one value: not the position)
        if d <= limit then
          local cl, num = sunpack('>I4I3', v, start + 4)
          d = d + bits_upto(bxor(lo, cl), limit - d)
          if d <= limit then
            local r = record(key, num)
            if r then best = {kind = 1, key = key, num = num, dist = d, rec = r} end
          end
        end
        pos = start + 11
      else
        pos = p + 1
      end
    end
  end
  if nc > 0 and (best == nil or best.kind == 2) then
    local shared = {}
    for j = 1, first_n do scan(vals, j, shared, nil) end
    local hopeful = nil  -- articles that could still reach the thresholds with the other clauses
    for num, s in pairs(shared) do
      if qualifies(s + rest_weight) then
        hopeful = hopeful or {}
        hopeful[num] = true
      end
    end
    local from, to = first_n + 1, split
    if hopeful then
      for num in pairs(hopeful) do
        if qualifies(shared[num] + half_left) then to = nc; break end  -- (the first half cannot drop it)
      end
    end
    while hopeful and from <= to do
      local got = hmget(key, clause_fields(from, to))
      for j = 1, #got do vals[3 + from + j] = got[j] end  -- (KEYS[1]'s stay in `first` for an insert)
      for j = from, to do scan(vals, j, shared, hopeful) end
      if to < nc then
        local still = nil
        for num in pairs(hopeful) do
          if qualifies(shared[num] + half_left) then
            still = still or {}
            still[num] = true
          end
        end
        hopeful = still
      end
      from, to = to + 1, nc
    end
    for num, s in pairs(hopeful or {}) do
      s = shared[num]
      if qualifies(s) and (best == nil or s > best.score
          or (s == best.score and key == best.key and num < best.num)) then
        local r = record(key, num)
        if r and r.len >= min_chars then
          best = {kind = 2, key = key, num = num, dist = dist(r.hi, r.lo), score = s, rec = r}
        end
      end
    end
  end
end

if best then
  local orig_id, orig_url = best.rec.id, best.rec.url
  -- A crawler that processes an article again (a racing pass) finds the article itself: that is not a
  -- reprint of it; and a reprint seen twice is listed once (LPOS: Redis 6.0.6+).
  if mode == 'insert' and orig_id ~= item_id and url ~= orig_url
      and not redis.call('LPOS', reprints_prefix .. orig_id, url) then
    local rkey = reprints_prefix .. orig_id
    redis.call('RPUSH', rkey, url)
    local left = (best.rec.day + 1 + retention) * 86400 - now  -- the original's own end
    if left > 0 and redis.call('TTL', rkey) < left then redis.call('EXPIRE', rkey, left) end
  end
  local reason = 'simhash'
  if best.kind == 2 then reason = 'clauses' end
  return {reason, orig_id, orig_url, best.dist}
end
if mode ~= 'insert' then return 0 end

local key = KEYS[1]
-- one HMGET for the counters and the old values of the fields the insert appends to and the lookup did
-- not read, one HSET for everything: each redis.call has its own cost
local day_field = 'c' .. today
local names, unread = {'n', day_field}, {}
for j = first_n + 1, nc do
  if first[4 + j] == nil then  -- (a field read and absent is false)
    unread[#unread + 1] = 4 + j
    names[#names + 1] = fields[4 + j]
  end
end
local got = hmget(key, names)
for i, at in ipairs(unread) do first[at] = got[2 + i] end
local num = tonumber(got[1] or '0') + 1
if num >= 16777216 then return redis.error_reply('dedupe index: period full (3-byte document numbers)') end
local pending = {n = num, [day_field] = tonumber(got[2] or '0') + 1}
pending['d' .. num] = fp .. struct.pack('>I4I4I2', today, len, #item_id) .. item_id .. url
local numb = struct.pack('>I3', num)
for t = 1, 4 do pending[fields[t]] = (first[t] or '') .. fp .. numb end
for j = 1, nc do
  local f = fields[4 + j]
  if pending[f] == nil then pending[f] = first[4 + j] or '' end
  pending[f] = pending[f] .. lows[j] .. numb
end
local flat = {}
for f, v in pairs(pending) do
  flat[#flat + 1] = f
  flat[#flat + 1] = v
  if #flat >= 1000 then redis.call('HSET', key, unpack(flat)); flat = {} end
end
if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
-- the period's end never moves: its first insert sets it, and every 1024th again (a TTL lost to an
-- operator's PERSIST comes back); an EXPIRE on every insert was 2-3 % of the insert's time
if num % 1024 == 1 then redis.call('EXPIRE', key, ttl) end
if num == 1 then  -- the period lengths in use, so that a changed retention still reads this one (newswatch/fp_periods.py)
  redis.call('SADD', lengths_key, period_days)
  redis.call('EXPIRE', lengths_key, (retention + period_days) * 86400)
end
return num
"""

# The per-day hashes of earlier versions (`keys.fp_bucket(day)`: `d<num>` records of fingerprint, clause
# weight, length, id length, id, URL; `s<top 16 bits>` postings of 6 bytes, low 16 bits and number; `b`
# fields, rebuilt here from the fingerprints) moved into the period hash that holds their day, in one
# atomic step per day: a concurrent lookup sees the article in one layout or the other, never in neither.
# KEYS: the old day hash, its period hash. ARGV: the day, seconds until the period hash expires.
# Returns the number of articles moved.
UPGRADE = """
local legacy, key = KEYS[1], KEYS[2]
local day, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local flat = redis.call('HGETALL', legacy)
if #flat == 0 then return 0 end
local docs, hashes = {}, {}
for i = 1, #flat, 2 do
  local f, v = flat[i], flat[i + 1]
  local c = string.sub(f, 1, 1)
  if c == 'd' then
    docs[#docs + 1] = {num = tonumber(string.sub(f, 2)), rec = v}
  elseif c == 's' then
    local top = struct.unpack('>I2', f, 2)
    for p = 1, #v, 6 do
      local low, num = struct.unpack('>I2I4', v, p)
      local list = hashes[num]
      if not list then list = {}; hashes[num] = list end
      list[#list + 1] = top * 65536 + low
    end
  end
end
table.sort(docs, function(a, b) return a.num < b.num end)
local n0 = tonumber(redis.call('HGET', key, 'n') or '0')
local pending, order = {}, {}
local function append(f, s)
  local parts = pending[f]
  if not parts then parts = {}; pending[f] = parts; order[#order + 1] = f end
  parts[#parts + 1] = s
end
for i, doc in ipairs(docs) do
  local num = n0 + i
  local numb = struct.pack('>I3', num)
  local hi, lo, weight, len, idlen, pos = struct.unpack('>I4I4I4I4I2', doc.rec)
  local fp = string.sub(doc.rec, 1, 8)
  redis.call('HSET', key, 'd' .. num, fp .. struct.pack('>I4I4I2', day, len, idlen) .. string.sub(doc.rec, pos))
  local blocks = {math.floor(hi / 65536), hi % 65536, math.floor(lo / 65536), lo % 65536}
  for t = 1, 4 do append('b' .. (t - 1) .. struct.pack('>I2', math.floor(blocks[t] / 16)), fp .. numb) end
  for _, h in ipairs(hashes[doc.num] or {}) do
    append('s' .. struct.pack('>I3', math.floor(h / 16384)), struct.pack('>I2', h % 16384) .. numb)
  end
end
for _, f in ipairs(order) do
  redis.call('HSET', key, f, (redis.call('HGET', key, f) or '') .. table.concat(pending[f]))
end
redis.call('HSET', key, 'n', n0 + #docs)
redis.call('HINCRBY', key, 'c' .. day, #docs)
if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
redis.call('DEL', legacy)
return #docs
"""
