"""Fill a reprint index with synthetic articles fast, for bench/dedupe_index.py.

`synthetic` makes articles shaped like the corpus (its clause counts and lengths, random hashes and
fingerprints), spread day by day over the window. `fill` writes, for all of them at once, exactly what
`DedupeIndex.check_and_insert` (the Lua script in crawler/dedupe_lua.py) writes inserting them one by one,
oldest first: the protocol bytes of the HSETs are built with numpy and sent down one connection, since
redis-py's argument packing in Python took most of the bench's 15 minutes. `script_fill` is the real path;
`differences` compares the two, and the bench and tests/test_dedupe_index.py check that they agree byte
for byte, so this fill cannot drift from the product. `fill_anchor` does the same for the anchor's sets.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from crawler.dedupe import CLAUSE_FIELD_BITS, DAY, DedupeIndex, Evidence
from newswatch import defaults

DAYS = defaults.DEFAULT_DEDUPE_RETENTION_DAYS + 1  # the window: today and the 30 days before
ARTICLE_CHARS = 1900  # every synthetic article's length (the corpus's articles: 1,700 on average)
ID_BASE = 1_700_000_000  # 10-digit ids, so that ids and URLs are as long as the site's (21 and 51 bytes)
SITE_ID, SITE_URL = b"daydaynews-", b"https://daydaynews.cc/international/"
LOW_BITS = 32 - CLAUSE_FIELD_BITS
CHUNK = 1 << 16  # articles per sort in `synthetic`: (article in chunk, length, hash) fits a uint64 key
FIELDS = 5000  # field/value pairs per HSET
BATCH = 1 << 24  # bytes sent before the replies are read


def item_id(i: int) -> str:
    return f"{SITE_ID.decode()}{ID_BASE + i}"


def url(i: int) -> str:
    return f"{SITE_URL.decode()}{ID_BASE + i}.html"


@dataclass
class Articles:
    """n articles' evidence in flat arrays; article i is indexed on day `days[i]` (non-decreasing)."""

    fps: np.ndarray  # uint64
    days: np.ndarray  # int64
    starts: np.ndarray  # int64, n + 1: article i's clauses are hashes[starts[i]:starts[i + 1]]
    hashes: np.ndarray  # uint32, each article's clauses longest first (crawler/dedupe.py: longest_first)
    lengths: np.ndarray  # uint16

    def __len__(self) -> int:
        return len(self.fps)

    def evidence(self, i: int) -> Evidence:
        a, b = int(self.starts[i]), int(self.starts[i + 1])
        return Evidence(int(self.fps[i]), ARTICLE_CHARS,
                        dict(zip(self.hashes[a:b].tolist(), self.lengths[a:b].tolist(), strict=True)))

    def owners(self) -> np.ndarray:
        """The article each clause belongs to (uint32)."""
        return np.repeat(np.arange(len(self), dtype=np.uint32), np.diff(self.starts))


def synthetic(n: int, real: list[Evidence], rng: np.random.Generator, today: int) -> Articles:
    """n articles shaped like `real`, the oldest on day today - DAYS + 1, as many on each day."""
    counts = rng.choice(np.array([len(e.clauses) for e in real]), size=n)
    pool = np.array([v for e in real for v in e.clauses.values()], dtype=np.uint16)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    hashes, lengths = np.empty(starts[-1], dtype=np.uint32), rng.choice(pool, size=starts[-1])
    sample = np.uint64(defaults.DEDUPE_CLAUSE_SAMPLE)
    for a in range(0, n, CHUNK):
        b = min(n, a + CHUNK)
        lo, hi = starts[a], starts[b]
        owner = np.repeat(np.arange(b - a, dtype=np.uint64), counts[a:b])
        h = rng.integers(0, 2**32 // int(sample), size=hi - lo, dtype=np.uint64) * sample
        while True:  # an article's clause hashes are distinct (they are a dict's keys in Evidence)
            pairs = np.sort(owner << np.uint64(32) | h)
            if not (pairs[1:] == pairs[:-1]).any():
                break
            h = rng.integers(0, 2**32 // int(sample), size=hi - lo, dtype=np.uint64) * sample  # (rare)
        # longest first, ties by hash: sorted as one key, (article, 0xFFFF - length, hash)
        key = np.sort(owner << np.uint64(48) | (np.uint64(0xFFFF) - lengths[lo:hi]) << np.uint64(32) | h)
        hashes[lo:hi] = key & np.uint64(0xFFFFFFFF)
        lengths[lo:hi] = np.uint64(0xFFFF) - (key >> np.uint64(32) & np.uint64(0xFFFF))
    fps = rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=n, dtype=np.uint64)
    days = today - DAYS + 1 + np.arange(n, dtype=np.int64) * DAYS // n
    return Articles(fps, days, starts, hashes, lengths)


# --- the protocol (RESP) ---------------------------------------------------------------------------------

def command(name: bytes, key: bytes, more: int) -> bytes:
    """The start of a command of `name`, `key` and `more` arguments still to come."""
    return b"*%d\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (2 + more, len(name), name, len(key), key)


def bulk(*args: bytes) -> bytes:
    return b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def rows(m: int, *parts) -> np.ndarray:
    """(m, width) bytes: constant parts (bytes) and per-row parts ((m, w) uint8 arrays) side by side."""
    return np.hstack([np.broadcast_to(np.frombuffer(p, dtype=np.uint8), (m, len(p))) if isinstance(p, bytes)
                      else p for p in parts])


def big_endian(values: np.ndarray, width: int) -> np.ndarray:
    """(m, width) uint8: each value's low `width` bytes, most significant first."""
    return values.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - width:]


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """(m, width) uint8: each value in ASCII decimal, `width` digits."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values.astype(np.int64)[:, None] // powers % 10 + ord("0")).astype(np.uint8)


def connect(client) -> socket.socket:
    """A socket of its own to `client`'s server and database (TCP or unix socket, as the client's)."""
    kw = client.connection_pool.connection_kwargs
    if "path" in kw:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(kw["path"])
    else:
        sock = socket.create_connection((kw.get("host", "localhost"), kw.get("port", 6379)))
    if kw.get("password"):
        _exchange(sock, [command(b"AUTH", (kw.get("username") or "default").encode(), 1) + bulk(kw["password"].encode())])
    _exchange(sock, [command(b"SELECT", b"%d" % int(kw.get("db") or 0), 0)])
    return sock


def _exchange(sock: socket.socket, commands: list[bytes]) -> None:
    """Send commands and read their replies: one line each (an integer or OK), none an error."""
    sock.sendall(b"".join(commands))
    replies, lines = bytearray(), 0
    while lines < len(commands):
        got = sock.recv(1 << 20)
        if not got:
            raise ConnectionError("the server closed the connection")
        replies += got
        lines += got.count(b"\n")
    errors = [line for line in bytes(replies).split(b"\r\n") if line.startswith(b"-")]
    if errors:
        raise RuntimeError(f"{len(errors)} commands failed: {errors[0].decode(errors='replace')}")


def send(client, commands: Iterable[bytes]) -> int:
    """Send protocol bytes to `client`'s server down a connection of their own, BATCH bytes at a time, the
    replies counted rather than parsed (redis-py's parsing of 262,144 replies took seconds); the number of
    commands. An error reply raises RuntimeError."""
    done, pending, size = 0, [], 0
    with connect(client) as sock:
        for cmd in commands:
            pending.append(cmd)
            size += len(cmd)
            if size >= BATCH:
                _exchange(sock, pending)
                done, pending, size = done + len(pending), [], 0
        if pending:
            _exchange(sock, pending)
    return done + len(pending)


def grouped(key: bytes, names: np.ndarray, records: np.ndarray, name_of) -> Iterator[bytes]:
    """HSETs of one field per distinct value of `names` (sorted): its records (rows) concatenated in order."""
    buf, width = memoryview(records.tobytes()), records.shape[1]
    cut = np.flatnonzero(names[1:] != names[:-1]) + 1
    bounds = np.concatenate([[0], cut, [len(names)]]).tolist()
    out: list = []
    for j, f in enumerate(names[bounds[:-1]].tolist()):
        a, b = bounds[j] * width, bounds[j + 1] * width
        name = name_of(f)
        out += [b"$%d\r\n%s\r\n$%d\r\n" % (len(name), name, b - a), buf[a:b], b"\r\n"]
        if len(out) == 3 * FIELDS:
            yield command(b"HSET", key, 2 * FIELDS) + b"".join(out)
            out = []
    if out:
        yield command(b"HSET", key, 2 * (len(out) // 3)) + b"".join(out)


# --- newswatch's index -------------------------------------------------------------------------------------

def inserted_at(arts: Articles, i: int, now: float) -> float:
    """When article i is inserted: its day, at now's time of day."""
    return now - (int(now // DAY) - int(arts.days[i])) * DAY


def fill(index: DedupeIndex, arts: Articles, now: float) -> None:
    """Write what check_and_insert of every article, oldest first, writes (crawler/dedupe_lua.py: layout)."""
    periods = arts.days // index.period_days
    for period in np.unique(periods).tolist():
        a, b = np.searchsorted(periods, [period, period + 1]).tolist()
        key = index.keys.fp_period(index.period_days, period).encode()
        send(index.client, _period(key, arts, a, b))
        # the script sets a period's TTL at its inserts number 1, 1025, 2049, ...: the last of them here
        last = a + (b - a - 1) // 1024 * 1024
        index.client.expire(key, index.expires_in(period, inserted_at(arts, last, now)))
        # the record of period lengths, as the script's first insert of a period writes it
        index.client.sadd(index.keys.fp_lengths, index.period_days)
        index.client.expire(index.keys.fp_lengths, (index.retention_days + index.period_days) * DAY)


def _period(key: bytes, arts: Articles, a: int, b: int) -> Iterator[bytes]:
    m = b - a
    nums = np.arange(1, m + 1, dtype=np.int64)
    # d<num>: fingerprint, day, length, id length, id, URL
    ids = digits(np.arange(a, b) + ID_BASE, 10)
    record = rows(m, big_endian(arts.fps[a:b], 8), big_endian(arts.days[a:b], 4),
                  big_endian(np.full(m, ARTICLE_CHARS), 4), big_endian(np.full(m, len(SITE_ID) + 10), 2),
                  SITE_ID, ids, SITE_URL, ids, b".html")
    for width in range(1, len(str(m)) + 1):
        lo, hi = 10 ** (width - 1) - 1, min(m, 10**width - 1)  # the numbers of `width` digits
        fields = rows(hi - lo, b"$%d\r\nd" % (width + 1), digits(nums[lo:hi], width),
                      b"\r\n$%d\r\n" % record.shape[1], record[lo:hi], b"\r\n")
        for s in range(0, hi - lo, FIELDS):
            part = fields[s:s + FIELDS]
            yield command(b"HSET", key, 2 * len(part)) + part.tobytes()
    days, per_day = np.unique(arts.days[a:b], return_counts=True)
    counts = [x for d, c in zip(days.tolist(), per_day.tolist(), strict=True) for x in (b"c%d" % d, b"%d" % c)]
    yield command(b"HSET", key, 2 + len(counts)) + bulk(b"n", b"%d" % m, *counts)
    # b<t><top 12 bits of block t>: fingerprint and number, in the order inserted
    num3 = big_endian(nums, 3)
    for t in range(4):
        block = (arts.fps[a:b] >> np.uint64(48 - 16 * t)) & np.uint64(0xFFFF)
        order = np.sort(block >> np.uint64(4) << np.uint64(32) | np.arange(m, dtype=np.uint64))
        pos = (order & np.uint64(0xFFFFFFFF)).astype(np.int64)
        yield from grouped(key, order >> np.uint64(32), rows(m, big_endian(arts.fps[a:b][pos], 8), num3[pos]),
                           lambda f, t=t: b"b%d" % t + f.to_bytes(2, "big"))
    # s<top 18 bits of the clause hash>: low 14 bits and number, in the order inserted (article, then its
    # clauses longest first)
    p, q = int(arts.starts[a]), int(arts.starts[b])
    h = arts.hashes[p:q].astype(np.uint64)
    shift = np.uint64(38)  # field (18 bits) above the posting's position in the period
    order = h >> np.uint64(LOW_BITS) << shift | np.arange(q - p, dtype=np.uint64)
    del h
    order.sort()
    pos = (order & np.uint64((1 << 38) - 1)).astype(np.int64)
    owner = np.repeat(np.arange(1, m + 1, dtype=np.int64), np.diff(arts.starts[a:b + 1]))[pos]
    low = (arts.hashes[p:q][pos] & ((1 << LOW_BITS) - 1)).astype(np.int64)
    del pos
    yield from grouped(key, order >> shift, rows(q - p, big_endian(low, 2), big_endian(owner, 3)),
                       lambda f: b"s" + f.to_bytes(3, "big"))


def script_fill(index: DedupeIndex, arts: Articles, now: float) -> None:
    """The real path: every article through check_and_insert's script, one by one, oldest first."""
    for i in range(len(arts)):
        verdict = index.insert_evidence(item_id(i), url(i), arts.evidence(i), inserted_at(arts, i, now))
        assert not verdict.duplicate, (i, verdict)  # random evidence: nothing repeats


def differences(client, one: DedupeIndex, other: DedupeIndex, now: float) -> list[str]:
    """Where two indexes' period hashes differ (fields, values, TTL within 5 s); [] when they are equal."""
    found, compared = [], 0
    for key_one, key_other in zip(one.window(now), other.window(now), strict=True):
        a, b = client.hgetall(key_one), client.hgetall(key_other)
        compared += len(a)
        found += [f"{key_one} vs {key_other}: field {f!r}" for f in sorted(a.keys() | b.keys()) if a.get(f) != b.get(f)]
        if abs(client.ttl(key_one) - client.ttl(key_other)) > 5:
            found.append(f"{key_one} vs {key_other}: TTL {client.ttl(key_one)} vs {client.ttl(key_other)}")
    return found if compared else ["nothing to compare: both indexes are empty"]


# --- the anchor: one Redis set per (table, 16-bit block value) holding the fingerprints in hex -------------

def anchor_keys(fp: int, prefix: str = "anchor") -> list[str]:
    return [f"{prefix}:{t}:{(fp >> (48 - 16 * t)) & 0xFFFF}" for t in range(4)]


def fill_anchor(client, fps: np.ndarray, prefix: str = "anchor") -> None:
    """SADD every fingerprint to its four sets, what the anchor's script does for each."""
    nibbles = big_endian(fps, 8)
    hexed = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[np.stack([nibbles >> 4, nibbles & 15], axis=2)]
    members = rows(len(fps), b"$16\r\n", hexed.reshape(-1, 16), b"\r\n")

    def commands() -> Iterator[bytes]:
        for t in range(4):
            block = ((fps >> np.uint64(48 - 16 * t)) & np.uint64(0xFFFF)).astype(np.uint16)
            order = np.argsort(block, kind="stable")
            buf, width, sorted_blocks = memoryview(members[order].tobytes()), members.shape[1], block[order]
            cut = np.flatnonzero(sorted_blocks[1:] != sorted_blocks[:-1]) + 1
            bounds = np.concatenate([[0], cut, [len(order)]]).tolist()
            for j, value in enumerate(sorted_blocks[bounds[:-1]].tolist()):
                key = f"{prefix}:{t}:{value}".encode()
                yield command(b"SADD", key, bounds[j + 1] - bounds[j]) + buf[bounds[j] * width:bounds[j + 1] * width]

    send(client, commands())
