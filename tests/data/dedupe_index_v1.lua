-- The reprint index script of newswatch before the period hashes (crawler/dedupe.py at commit 2fc9149),
-- kept to build an index in the old per-day layout for tests/test_dedupe_index.py's upgrade test.
local mode, item_id, url = ARGV[1], ARGV[2], ARGV[3]
local hi, lo, len, weight = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local packed = ARGV[8]
local maxd, permille, min_shared = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local min_chars, ttl, reprints_prefix = tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14]

local function popcount(x)
  local n = 0
  x = bit.tobit(x)
  while x ~= 0 do x = bit.band(x, x - 1); n = n + 1 end
  return n
end
local function hamming(h1, l1, h2, l2) return popcount(bit.bxor(h1, h2)) + popcount(bit.bxor(l1, l2)) end

local block_fields = {}
local blocks = {math.floor(hi / 65536), hi % 65536, math.floor(lo / 65536), lo % 65536}
-- fields hold the records whose block starts with 12 given bits: a few records per field instead of
-- one field (and its ~70 bytes of overhead) per record; the whole block is compared below.
for t = 1, 4 do block_fields[t] = 'b' .. (t - 1) .. struct.pack('>I2', math.floor(blocks[t] / 16)) end
local function block(t, h, l)
  if t == 1 then return math.floor(h / 65536) elseif t == 2 then return h % 65536
  elseif t == 3 then return math.floor(l / 65536) else return l % 65536 end
end
local sent_fields, sent_lows, sent_lens = {}, {}, {}
for i = 1, #packed, 6 do
  local h, l = struct.unpack('>I4I2', packed, i)
  sent_fields[#sent_fields + 1] = 's' .. struct.pack('>I2', math.floor(h / 65536))
  sent_lows[#sent_lows + 1] = struct.pack('>I2', h % 65536)
  sent_lens[#sent_lens + 1] = l
end

-- best match: simhash matches beat clause matches; then smaller distance / larger share; then newer.
local best = nil
local today_blocks, today_sents = nil, nil
for k = 1, #KEYS do
  local key = KEYS[k]
  local vals = redis.call('HMGET', key, unpack(block_fields))
  if k == 1 then today_blocks = vals end
  for t = 1, 4 do
    local v = vals[t]
    if v then
      for i = 1, #v, 12 do
        local ch, cl, num = struct.unpack('>I4I4I4', v, i)
        if block(t, ch, cl) == blocks[t] then
          local d = hamming(hi, lo, ch, cl)
          if d <= maxd and (best == nil or best.kind == 2 or d < best.dist) then
            best = {kind = 1, key = key, num = num, dist = d}
          end
        end
      end
    end
  end
  if #sent_fields > 0 and (best == nil or best.kind == 2) then
    local svals = redis.call('HMGET', key, unpack(sent_fields))
    if k == 1 then today_sents = svals end
    local shared = {}
    for j = 1, #sent_fields do
      local v = svals[j]
      if v then
        local pos = 1
        while true do
          local p = string.find(v, sent_lows[j], pos, true)
          if not p then break end
          if (p - 1) % 6 == 0 then
            local num = struct.unpack('>I4', v, p + 2)
            shared[num] = (shared[num] or 0) + sent_lens[j]
            pos = p + 6
          else
            pos = p + 1
          end
        end
      end
    end
    for num, s in pairs(shared) do
      if s >= min_shared then
        local rec = redis.call('HGET', key, 'd' .. num)
        if rec then
          local ch, cl, cweight, clen = struct.unpack('>I4I4I4I4', rec)
          if clen >= min_chars and s * 1000 >= permille * weight then
            local score = s
            if best == nil or score > best.score or (score == best.score and num < best.num and key == best.key) then
              best = {kind = 2, key = key, num = num, dist = hamming(hi, lo, ch, cl), score = score}
            end
          end
        end
      end
    end
  end
end

if best then
  local rec = redis.call('HGET', best.key, 'd' .. best.num)
  local ch, cl, cweight, clen, idlen, pos = struct.unpack('>I4I4I4I4I2', rec)
  local orig_id = string.sub(rec, pos, pos + idlen - 1)
  local orig_url = string.sub(rec, pos + idlen)
  -- A crawler that processes an article again (a racing pass) finds the article itself: that is not a
  -- reprint of it; and a reprint seen twice is listed once (LPOS: Redis 6.0.6+).
  if mode == 'insert' and orig_id ~= item_id and url ~= orig_url
      and not redis.call('LPOS', reprints_prefix .. orig_id, url) then
    local rkey = reprints_prefix .. orig_id
    redis.call('RPUSH', rkey, url)
    local left = redis.call('PTTL', best.key)
    if left > 0 and redis.call('PTTL', rkey) < left then redis.call('PEXPIRE', rkey, left) end
  end
  local reason = 'simhash'
  if best.kind == 2 then reason = 'clauses' end
  return {1, reason, orig_id, orig_url, best.dist}
end
if mode ~= 'insert' then return {0, 'new', 0} end

local key = KEYS[1]
if today_sents == nil and #sent_fields > 0 then today_sents = redis.call('HMGET', key, unpack(sent_fields)) end
local num = redis.call('HINCRBY', key, 'n', 1)
redis.call('HSET', key, 'd' .. num,
  struct.pack('>I4I4I4I4I2', hi, lo, weight, len, #item_id) .. item_id .. url)
local rec = struct.pack('>I4I4I4', hi, lo, num)
for t = 1, 4 do redis.call('HSET', key, block_fields[t], (today_blocks[t] or '') .. rec) end
local pending = {}
for j = 1, #sent_fields do
  local f = sent_fields[j]
  if pending[f] == nil then pending[f] = today_sents[j] or '' end
  pending[f] = pending[f] .. sent_lows[j] .. struct.pack('>I4', num)
end
for f, v in pairs(pending) do redis.call('HSET', key, f, v) end
redis.call('EXPIRE', key, ttl)
return {0, 'new', num}
