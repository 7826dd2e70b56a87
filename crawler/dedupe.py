"""Is this article a reprint of one already queued? The decision rule, and the Redis index that applies it.

Evidence of an article (`evidence`): its text as the pipeline passes it (title, lead, body paragraphs,
one per line; the caller has dropped site furniture with the site profile, crawler/analyse.py) is folded to one width and script and squeezed of punctuation; then
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

The index (`DedupeIndex`) only finds candidates and then applies the same rule in a Lua script
(crawler/dedupe_lua.py, which describes the layout), so that checking and inserting is one atomic step.
It follows Manku, Jain and Das Sarma (2007) for the fingerprints — four 16-bit blocks, one of which two
fingerprints within distance 3 share — plus clause postings; any "clauses" match shares a clause.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from dataclasses import dataclass
from itertools import compress

from crawler import dedupe_lua, foldcodes, simhash
from crawler import normalize as norm
from crawler.packed_script import PackedScript
from newswatch import defaults, fp_periods
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


def evidence(text: str) -> Evidence:
    """The evidence of one article (text: title, lead, paragraphs joined by newlines)."""
    text = text or ""  # site furniture was dropped by the caller, with the site profile (crawler/analyse.py)
    pieces = foldcodes.clause_pieces(text)  # the same as the string functions below, on arrays and strings
    if pieces is None:
        folded = norm.fold(text)
        squeezed, pieces = norm.squeeze(folded), norm.clauses(folded)
    else:
        squeezed = "".join(pieces)
    return Evidence(simhash.fingerprint(squeezed), len(squeezed), _sampled_clauses(pieces, len(squeezed)))


# A fresh 4-byte BLAKE2b, copied for each clause: a third cheaper than the constructor, which parses
# its dozen keyword arguments every time (clause hashes are a quarter of the evidence's time).
_BLAKE2B_4 = hashlib.blake2b(digest_size=4)
# the sample keeps a clause when its hash is 0 modulo DEDUPE_CLAUSE_SAMPLE: for 2, the digest's last
# byte is even; this table turns each last byte into 1 (kept) or 0, for `itertools.compress`
_SAMPLE = defaults.DEDUPE_CLAUSE_SAMPLE
_KEPT = bytes(int(b % _SAMPLE == 0) for b in range(256)) if 256 % _SAMPLE == 0 else None


def _sampled_clauses(pieces: list[str], longest: int | None = None) -> dict[int, int]:
    """{clause hash: length} of the clauses of DEDUPE_MIN_CLAUSE_CHARS characters or more whose hash is in
    the sample, the first of equal ones (`pieces`: the clauses, empty ones allowed; `longest`: a bound on
    their length, when the caller knows one). A clause's hash is the 4-byte BLAKE2b of its UTF-8, read
    big-endian: the index stores these, so they never change."""
    least, fresh, digests, lengths = defaults.DEDUPE_MIN_CLAUSE_CHARS, _BLAKE2B_4.copy, [], []
    for clause in pieces:  # ~150 a text; a plain loop is the fastest form measured (docs/dedupe.md)
        if len(clause) >= least:
            h = fresh()
            h.update(clause.encode())  # (UTF-8; naming it costs a lookup of the name every call)
            digests.append(h.digest())
            lengths.append(len(clause))
    joined = b"".join(digests)
    hashes = struct.unpack(f">{len(digests)}I", joined)
    if _KEPT is None:
        kept = bytes(h % _SAMPLE == 0 for h in hashes)
    else:  # (a sample that divides 256 depends on the last byte only: one C call for all the clauses)
        kept = joined[3::4].translate(_KEPT)
    if (max(lengths, default=0) if longest is None else longest) > 0xFFFF:
        lengths = [min(n, 0xFFFF) for n in lengths]  # lengths travel as 16 bits; no real clause comes near
    clauses = dict(zip(compress(hashes, kept), compress(lengths, kept), strict=True))
    if len(clauses) < kept.count(1):  # a clause twice: the first counts
        clauses = {}
        for h, n in zip(compress(hashes, kept), compress(lengths, kept), strict=True):
            clauses.setdefault(h, n)
    return clauses


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


INDEX_KEYS = defaults.DEDUPE_INDEX_KEYS
CLAUSE_FIELD_BITS = 18  # of the 32-bit clause hash: the field; the other 14 go into the 2-byte posting
_LOW_BITS = 32 - CLAUSE_FIELD_BITS
_LOW_MASK = (1 << _LOW_BITS) - 1
# the script's packed arguments after the fingerprint and block fields, and its settings
_HEAD, _SETTINGS = struct.Struct(">IIIIIIH"), struct.Struct(">HHIIIIH")


def layout(ev: Evidence, ordered: list[tuple[int, int]] | None = None) -> tuple[bytes, bytes]:
    """The field names (and clause postings' low halves) the Lua script reads and writes for `ev`;
    `ordered`: `longest_first(ev)` when the caller has it. Block t: the fingerprint's 16-bit block t
    without its low 4 bits; a clause: "s", the field (3 bytes), the low bits (2) and the length (2)."""
    ordered = longest_first(ev) if ordered is None else ordered
    return _blocks(ev.simhash), _clause_fields([(0xFFFF - n) << 32 | h for h, n in ordered])


def _blocks(fp: int) -> bytes:
    return b"".join(b"b%d" % t + ((fp >> (52 - 16 * t)) & 0xFFF).to_bytes(2, "big") for t in range(4))


# A clause as one number that sorts longest first, ties by hash: (0xFFFF - length) << 32 | hash. The
# script's arguments are built from these (one sort of ints, no key function: the call's Python is part of
# the index's p99, docs/dedupe.md); `longest_first` is the readable form of the same order.
_FIELD = 0x73 << 56  # "s"


def _ordered_codes(ev: Evidence) -> list[int]:
    return sorted([(0xFFFF - n) << 32 | h for h, n in ev.clauses.items()])


def _clause_fields(codes: list[int]) -> bytes:
    """Each clause as its 8 packed bytes: "s", field (3 bytes), low bits (2), length (2)."""
    return struct.pack(f">{len(codes)}Q", *[
        _FIELD | (c & 0xFFFFFFFF) >> _LOW_BITS << 32 | (c & _LOW_MASK) << 16 | (0xFFFF - (c >> 32))
        for c in codes])


def longest_first(ev: Evidence) -> list[tuple[int, int]]:
    """The clauses (hash, length), longest first (ties: by hash, so the order is the same everywhere)."""
    return sorted(ev.clauses.items(), key=lambda item: (-item[1], item[0]))


def first_clauses(ev: Evidence, ordered: list[tuple[int, int]] | None = None) -> int:
    """How many of the longest clauses carry more than (1000 - per mille)/1000 of the weight: an article
    holding DEDUPE_CONTAINMENT_PER_MILLE of the weight must share one of them."""
    return _first_n([n for _, n in (longest_first(ev) if ordered is None else ordered)], ev.weight)


def _first_n(lengths, weight: int) -> int:
    rest, taken = (1000 - defaults.DEDUPE_CONTAINMENT_PER_MILLE) * weight, 0
    for n, length in enumerate(lengths, 1):
        taken += length * 1000
        if taken > rest:
            return n
    return len(lengths)


class DedupeIndex:
    """The fingerprint index in Redis. Reads `dedupe_retention_days` and `dedupe_min_chars` (passed in).

    `check_and_insert` is atomic: of two crawls racing on one story, one inserts it and the other is told
    it is a reprint. A reprint's URL is appended to `keys.reprints(original id)` (once), which expires with
    the original. An article checked again under its own item id or URL matches itself (duplicate, with
    `original_id == item_id`) and is not listed as its own reprint.

    Articles are kept in period hashes of `defaults.fp_period_days(retention)` days (15 for 30 days of retention),
    each expiring whole (EXPIRE: Redis 6.2 has no per-field expiry) at the end of its last day plus the
    retention. A lookup reads the periods that overlap the window — at most INDEX_KEYS (4), whatever the
    retention — and ignores records older than the retention (their day is in the record), so decisions are
    exactly those of a per-day window; an article's data leaves memory at most one period after that.
    Changing the retention changes the period length: the hashes of the old length are read too, in the
    same layout, until they expire (newswatch/fp_periods.py), so what was indexed before stays found.

    Earlier versions kept one hash per day (`keys.fp_bucket(day)`); the first lookup of an index moves
    those of the window into the period hashes (atomically, day by day), so an upgrade keeps finding
    reprints of articles indexed before it.
    """

    def __init__(self, client, keys: Keys, retention_days: int = defaults.DEFAULT_DEDUPE_RETENTION_DAYS,
                 min_chars: int = defaults.DEFAULT_DEDUPE_MIN_CHARS):
        if retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, got {retention_days}")
        self.client = client
        self.keys = keys
        self.retention_days = int(retention_days)
        self.period_days = defaults.fp_period_days(self.retention_days)
        self.min_chars = int(min_chars)
        self._script = PackedScript(client, dedupe_lua.INDEX)
        self._window_day, self._window = None, []
        self._upgrade_script = client.register_script(dedupe_lua.UPGRADE)
        self._upgraded = False
        # the script's constant arguments, packed once (crawler/dedupe_lua.py: INDEX)
        lengths_key = self.keys.fp_lengths.encode()
        self._settings = _SETTINGS.pack(
            defaults.DEDUPE_MAX_DISTANCE, defaults.DEDUPE_CONTAINMENT_PER_MILLE, defaults.DEDUPE_MIN_SHARED_CHARS,
            self.min_chars, self.retention_days, self.period_days, len(lengths_key)) + lengths_key + (
            self.keys.reprints("").encode())

    @classmethod
    def from_settings(cls, client, settings) -> DedupeIndex:
        return cls(client, Keys(settings.key_prefix), retention_days=settings.dedupe_retention_days,
                   min_chars=settings.dedupe_min_chars)

    def periods(self, now: float) -> list[int]:
        """The periods a lookup reads, newest (today's) first."""
        today = int(now // DAY)
        return list(range(today // self.period_days, (today - self.retention_days) // self.period_days - 1, -1))

    def window(self, now: float) -> list[str]:
        """The period hashes a lookup reads, today's first."""
        today = int(now // DAY)
        if today != self._window_day:  # (the same keys all day: named once)
            # (with the hashes an earlier retention wrote, while they hold days of the window)
            self._window = [key for key, _ in fp_periods.window(self.client, self.keys, now, self.retention_days)]
            self._window_day = today
        return list(self._window)

    def expires_in(self, period: int, now: float) -> int:
        """Seconds until a period hash expires: the end of its last day plus the retention."""
        return max(1, int(((period + 1) * self.period_days + self.retention_days) * DAY - now))

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
        if not self._upgraded:
            self.upgrade(now)
        result = self._script(self.window(now), self.script_args(mode, item_id, url, ev, now))
        if isinstance(result, list):  # a new article's reply is its document number alone
            reason, orig_id, orig_url, dist = result
            logger.debug("reprint of %s: %s (%s, distance %s)", orig_id, url, reason, dist)
            return Verdict(True, int(dist), orig_id.decode(), orig_url.decode(), fp, reason.decode())
        return Verdict(False, None, None, None, fp, "new")

    def script_args(self, mode: str, item_id: str, url: str, ev: Evidence, now: float) -> list:
        """The script's arguments (crawler/dedupe_lua.py: INDEX), packed into few."""
        today = int(now // DAY)
        codes = _ordered_codes(ev)  # (sorted once: the fields and `first` both follow this order)
        weight = ev.weight
        head = ev.simhash.to_bytes(8, "big") + _blocks(ev.simhash) + _HEAD.pack(
            ev.length, weight, today, today - self.retention_days, int(now),
            self.expires_in(today // self.period_days, now), _first_n([0xFFFF - (c >> 32) for c in codes], weight))
        return [mode, item_id, url, head, _clause_fields(codes), self._settings]

    def upgrade(self, now: float | None = None) -> int:
        """Move the old per-day hashes of the window into the period hashes; the number of articles moved."""
        now = time.time() if now is None else now
        today = int(now // DAY)
        days = range(today - self.retention_days, today + 1)
        pipe = self.client.pipeline(transaction=False)
        for day in days:
            pipe.exists(self.keys.fp_bucket(day))
        moved = 0
        for day, exists in zip(days, pipe.execute(), strict=True):
            if exists:
                period = day // self.period_days
                moved += int(self._upgrade_script(
                    keys=[self.keys.fp_bucket(day), self.keys.fp_period(self.period_days, period)],
                    args=[day, self.expires_in(period, now)]))
        if moved:
            logger.info("dedupe index: %d fingerprints moved from the per-day layout of earlier versions", moved)
        self._upgraded = True
        return moved

    def count(self, now: float | None = None) -> int:
        """Articles indexed within the retention window (read-only; `newswatch status` counts the same way)."""
        # lazy: imported here, not at the top: `newswatch dedupe` (which imports this module) never counts, and
        # its start-up is measured (docs/dedupe.md)
        from newswatch.status import fingerprint_count

        return fingerprint_count(self.client, self.keys, self.retention_days, now)

    def reprints(self, item_id: str) -> list[str]:
        return [u.decode() for u in self.client.lrange(self.keys.reprints(item_id), 0, -1)]
