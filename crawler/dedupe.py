"""Is this article a reprint of one already queued? The decision rule, and the Redis index that applies it.

Evidence of an article (`evidence`): its text as the pipeline passes it (title, lead, body paragraphs,
one per line) loses site furniture, is folded to one width and script and squeezed of punctuation; then
- `simhash`: the 64-bit SimHash of the whole squeezed text;
- `clauses`: a 32-bit hash and the length of each clause (text between commas, full stops, line breaks)
  of at least DEDUPE_MIN_CLAUSE_CHARS characters whose hash is 0 modulo DEDUPE_CLAUSE_SAMPLE (a fixed
  sample: the same clauses are kept in every copy). Clauses, not paragraphs, so that merging or splitting
  paragraphs changes nothing and a 1% edit leaves most of them intact.

The rule (`decide`), a pure function of two articles' evidence, says duplicate when both are at least
`min_chars` long and
- "simhash": the fingerprints differ in at most DEDUPE_MAX_DISTANCE bits (small edits, other punctuation,
  another script, a new title), or
- "clauses": at least DEDUPE_CONTAINMENT_PER_MILLE/1000 of the new article's clause text (and at least
  DEDUPE_MIN_SHARED_CHARS characters) is already in the old one: it brings little that is new (a
  reprint of the lead only, added boilerplate, a dropped paragraph). A new article quoting one paragraph
  of an old one is mostly new text and is kept; so is an update that adds much to an old article.
The simhash part is symmetric; the clause part asks how much of the *new* text is old, deliberately: on
the evaluation set a share of the shorter text misjudged an article quoting a paragraph that made up 80%
of the old one, while the new article's share separates reprints (1st percentile 0.58 among those the
fingerprint misses) from quotes (at most 0.56). See docs/dedupe.md.

The index (`DedupeIndex`) only finds candidates and then applies the same rule in a Lua script, so that
checking and inserting is one atomic step. Its layout (Manku, Jain and Das Sarma 2007, plus clauses),
one Redis hash per day (`keys.fp_bucket(day)`), with fields
- `n`: documents inserted that day (the next document number);
- `d<num>`: the document's record: fingerprint, clause weight, length, item id and URL;
- `b<t><12 bits>` for t in 0..3: the fingerprint cut into four 16-bit blocks, table t keyed by the
  first 12 bits of block t; value: 12-byte records (fingerprint, document number). Two fingerprints at
  distance <= 3 agree on at least one whole block, so looking up four fields finds every simhash match;
- `s<16 bits>`: clause postings keyed by the top half of the clause hash; value: 6-byte records
  (low half, document number). Any "clauses" match shares a clause, so it is found here.
A lookup reads the day hashes of the retention window only (retention + 1 keys, whatever the index size).
Each day's hash carries an EXPIRE for the end of that day plus the retention, so a fingerprint lives for
between `retention_days` and `retention_days + 1` days and leaves nothing stale behind, on Redis 6.2 too.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from dataclasses import dataclass

from crawler import normalize as norm
from crawler import simhash
from newswatch import defaults
from newswatch.defaults import Keys

logger = logging.getLogger(__name__)

DAY = 86400
NO_DISTANCE = 64  # reported when a text has nothing to fingerprint: as far apart as two fingerprints get


@dataclass(frozen=True)
class Evidence:
    """What the rule compares: the whole-text fingerprint, the length, the clauses (hash -> length)."""

    simhash: int
    length: int
    clauses: dict[int, int]

    @property
    def weight(self) -> int:
        return sum(self.clauses.values())


@dataclass(frozen=True)
class Verdict:
    """The decision about one article.

    `distance` is the whole-text SimHash Hamming distance to the matched (or compared) article; from
    `compare` it is always an int, NO_DISTANCE (64) when either text is empty after normalisation; from the
    index it is None when nothing matched. `reason`: "simhash", "clauses", "too-short" or "new".
    """

    duplicate: bool
    distance: int | None
    original_id: str | None
    original_url: str | None
    simhash: str
    reason: str


def _clause_hash(clause: str) -> int:
    return int.from_bytes(hashlib.blake2b(clause.encode("utf-8"), digest_size=4).digest(), "big")


def evidence(text: str) -> Evidence:
    """The evidence of one article (text: title, lead, paragraphs joined by newlines)."""
    folded = norm.fold(norm.strip_site_furniture(text or ""))
    squeezed = norm.squeeze(folded)
    clauses: dict[int, int] = {}
    for clause in norm.clauses(folded):
        if len(clause) >= defaults.DEDUPE_MIN_CLAUSE_CHARS:
            h = _clause_hash(clause)
            if h % defaults.DEDUPE_CLAUSE_SAMPLE == 0:
                # Lengths travel as 16 bits; no real clause comes near that.
                clauses.setdefault(h, min(len(clause), 0xFFFF))
    return Evidence(simhash.fingerprint(squeezed), len(squeezed), clauses)


def decide(old: Evidence, new: Evidence, min_chars: int) -> tuple[bool, str]:
    """The decision rule: (duplicate, reason). The Lua script below implements exactly this."""
    if old.length < min_chars or new.length < min_chars:
        return False, "too-short"
    if simhash.distance(old.simhash, new.simhash) <= defaults.DEDUPE_MAX_DISTANCE:
        return True, "simhash"
    shared = sum(length for h, length in new.clauses.items() if h in old.clauses)
    if (shared >= defaults.DEDUPE_MIN_SHARED_CHARS
            and shared * 1000 >= defaults.DEDUPE_CONTAINMENT_PER_MILLE * new.weight):
        return True, "clauses"
    return False, "new"


def compare(a: str, b: str, min_chars: int = defaults.DEFAULT_DEDUPE_MIN_CHARS) -> Verdict:
    """Is `b` (the later text) a reprint of `a`? Exactly the pipeline's decision, without Redis."""
    ea, eb = evidence(a), evidence(b)
    duplicate, reason = decide(ea, eb, min_chars)
    empty = ea.length == 0 or eb.length == 0
    return Verdict(duplicate=duplicate,
                   distance=NO_DISTANCE if empty else simhash.distance(ea.simhash, eb.simhash),
                   original_id=None, original_url=None, simhash=simhash.to_hex(eb.simhash), reason=reason)


# KEYS: the day hashes of the retention window, newest (today, where inserts go) first.
# ARGV: mode ("insert" | "check"), item id, url, fingerprint high and low 32 bits, length, clause
# weight, packed clauses (">I4I2" each), max distance, containment per mille, min shared chars,
# min chars, seconds until today's hash expires, key prefix of reprint lists.
# Returns {1, reason, original id, original url, distance} or {0, "new", document number or 0}.
_SCRIPT = """
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
"""


class DedupeIndex:
    """The fingerprint index in Redis. Reads `dedupe_retention_days` and `dedupe_min_chars` (passed in).

    `check_and_insert` is atomic: of two crawls racing on one story, one inserts it and the other is told
    it is a reprint. A reprint's URL is appended to `keys.reprints(original id)` (once), which expires with
    the original. An article checked again under its own item id or URL matches itself (duplicate, with
    `original_id == item_id`) and is not listed as its own reprint.
    """

    def __init__(self, client, keys: Keys, retention_days: int = defaults.DEFAULT_DEDUPE_RETENTION_DAYS,
                 min_chars: int = defaults.DEFAULT_DEDUPE_MIN_CHARS):
        if retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, got {retention_days}")
        self.client = client
        self.keys = keys
        self.retention_days = int(retention_days)
        self.min_chars = int(min_chars)
        self._script = client.register_script(_SCRIPT)

    @classmethod
    def from_settings(cls, client, settings) -> DedupeIndex:
        return cls(client, Keys(settings.key_prefix), retention_days=settings.dedupe_retention_days,
                   min_chars=settings.dedupe_min_chars)

    def window(self, now: float) -> list[str]:
        """The day hashes a lookup reads, today's first."""
        return self.keys.fp_window(now, self.retention_days)

    def check_and_insert(self, item_id: str, url: str, text: str, now: float | None = None) -> Verdict:
        """Decide whether `text` reprints an indexed article; if not (and long enough), index it."""
        return self._run("insert", item_id, url, evidence(text), now)

    def check(self, text: str, now: float | None = None) -> Verdict:
        """The same decision without inserting or recording anything."""
        return self._run("check", "", "", evidence(text), now)

    def insert_evidence(self, item_id: str, url: str, ev: Evidence, now: float | None = None) -> Verdict:
        """check_and_insert for evidence computed beforehand (by crawler/analyse.py, in a worker process)."""
        return self._run("insert", item_id, url, ev, now)

    def _run(self, mode: str, item_id: str, url: str, ev: Evidence, now: float | None) -> Verdict:
        fp = simhash.to_hex(ev.simhash)
        if ev.length < self.min_chars:
            # A degenerate fingerprint of a short text must not make unrelated short items collide.
            return Verdict(False, None, None, None, fp, "too-short")
        now = time.time() if now is None else now
        today = int(now // DAY)
        ttl = max(1, int((today + 1 + self.retention_days) * DAY - now))
        result = self._script(keys=self.window(now), args=self.script_args(mode, item_id, url, ev, ttl))
        if int(result[0]) == 1:
            reason, orig_id, orig_url, dist = result[1:5]
            logger.debug("reprint of %s: %s (%s, distance %s)", orig_id, url, reason, dist)
            return Verdict(True, int(dist), orig_id.decode(), orig_url.decode(), fp, reason.decode())
        return Verdict(False, None, None, None, fp, "new")

    def script_args(self, mode: str, item_id: str, url: str, ev: Evidence, ttl: int) -> list:
        packed = b"".join(struct.pack(">IH", h, n) for h, n in ev.clauses.items())
        return [mode, item_id, url, ev.simhash >> 32, ev.simhash & 0xFFFFFFFF, ev.length, ev.weight, packed,
                defaults.DEDUPE_MAX_DISTANCE, defaults.DEDUPE_CONTAINMENT_PER_MILLE,
                defaults.DEDUPE_MIN_SHARED_CHARS, self.min_chars, ttl, self.keys.reprints("")]

    def count(self, now: float | None = None) -> int:
        """Articles indexed within the retention window (for `newswatch status`)."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        for key in self.window(now):
            pipe.hget(key, "n")
        return sum(int(n) for n in pipe.execute() if n)

    def reprints(self, item_id: str) -> list[str]:
        return [u.decode() for u in self.client.lrange(self.keys.reprints(item_id), 0, -1)]
