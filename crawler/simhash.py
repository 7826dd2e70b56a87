"""64-bit SimHash of normalised text, and the Hamming distance between two fingerprints.

Pure: no Redis, no Scrapy. The text is cut into overlapping character shingles (`SHINGLE` characters;
Chinese has no spaces to cut words at), every shingle is hashed and every hash votes on each of the 64
bits (Charikar 2002, as used by Manku et al. 2007). All of it is array arithmetic in numpy: the code
points go in as one array, so there is no Python call per shingle — that is what makes it an order of
magnitude faster than the PyPI `simhash` package, which runs md5 once per feature.
"""

from __future__ import annotations

import numpy as np

SHINGLE = 3
BITS = 64

# Odd 64-bit multipliers (from splitmix64 / xxhash) so that shingles differing in any position differ
# in every output bit after the final mix.
_POSITION = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9][:SHINGLE], dtype=np.uint64)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: every input bit flips each output bit with probability about 1/2.
    # (In place, through one scratch array: the evidence's time is mostly such small array operations.)
    for shift, factor in ((_SHIFT1, _MIX1), (_SHIFT2, _MIX2)):
        np.right_shift(h, shift, out=scratch)
        h ^= scratch
        h *= factor
    np.right_shift(h, _SHIFT3, out=scratch)
    h ^= scratch
    return h


_SHIFT1, _SHIFT2, _SHIFT3 = np.uint64(30), np.uint64(27), np.uint64(31)


def shingle_hashes(text: str) -> np.ndarray:
    """64-bit hashes of every `SHINGLE`-character window (the whole text when it is shorter)."""
    if not text:
        return np.zeros(0, dtype=np.uint64)
    return code_hashes(np.frombuffer(text.encode("utf-32-le"), dtype="<u4"))


def code_hashes(codes: np.ndarray) -> np.ndarray:
    """`shingle_hashes` of the text whose code points these are."""
    count = max(len(codes) - SHINGLE + 1, 1)
    return _fill(codes, np.empty(count, dtype=np.uint64))


def _fill(codes: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The shingle hashes of `codes` (not empty) written into `h`, which has room for exactly them."""
    if len(codes) < SHINGLE:
        codes = np.concatenate([codes.astype(np.uint64), np.zeros(SHINGLE - len(codes), dtype=np.uint64)])
    n = len(h)
    codes = codes.astype(np.uint64)  # once: a multiply on 16-bit codes casts them each time, a third slower
    np.multiply(codes[:n], _POSITION[0], out=h)
    scratch = np.empty_like(h)
    for i in range(1, SHINGLE):  # SHINGLE array operations, not one per shingle
        np.multiply(codes[i:i + n], _POSITION[i], out=scratch)
        h += scratch
    return _mix(h, scratch)


def fingerprint(text: str) -> int:
    """SimHash of already normalised text; 0 for the empty string."""
    if not text:
        return 0
    return fingerprint_codes(np.frombuffer(text.encode("utf-32-le"), dtype="<u4"))


def fingerprint_codes(codes: np.ndarray) -> int:
    """`fingerprint` of the text whose code points these are (unsigned integers)."""
    count = len(codes) - SHINGLE + 1
    if not 0 < count <= _CHUNK or codes.dtype.kind != "u":  # (empty, shorter than a shingle, or longer
        return _vote(code_hashes(codes)) if len(codes) else 0  # than one chunk of votes)
    # A text's usual path, with as few array operations as the arithmetic allows: the shingles' sums of
    # products in one call (`correlate` computes exactly _fill's c[i]·P0 + c[i+1]·P1 + c[i+2]·P2 in
    # uint64, wrapping; 5 µs against 7 for the five products and sums), zeros after them to fill the last
    # column of `_column_votes` (a zero mixes to zero and votes for nothing), then mixed in place.
    h = np.correlate(codes, _POSITION, "valid")
    pad = -count % min(_DEPTH, count)
    if pad:
        h = np.concatenate((h, _ZEROS[:pad]))
    return _majority(_column_votes(_mix(h, np.empty_like(h))), count)


_DEPTH = 64  # hashes added per column by `_column_votes`: at most 255 (a byte); 64 was the fastest of 16-255
_ZEROS = np.zeros(_DEPTH, dtype=np.uint64)
_CHUNK = _DEPTH * 1024  # hashes voted at once: bounds the 64 bytes per hash that unpackbits makes


def _padded(count: int) -> int:
    """How many hashes `_vote` lays out for `count`: chunks of _CHUNK, the last filled to a whole column."""
    last = count % _CHUNK or _CHUNK
    depth = min(_DEPTH, last)
    return count - last + depth * -(-last // depth)


def _vote(hashes: np.ndarray, count: int | None = None) -> int:
    """The majority of each bit of the first `count` (default: all) hashes; any after them are zeros."""
    count = len(hashes) if count is None else count
    if not count:
        return 0
    if len(hashes) != _padded(count):
        hashes = np.concatenate([hashes[:count], np.zeros(_padded(count) - count, dtype=np.uint64)])
    votes = _column_votes(hashes[:_CHUNK])
    for start in range(_CHUNK, len(hashes), _CHUNK):
        votes += _column_votes(hashes[start:start + _CHUNK])
    return _majority(votes, count)


_LE64 = np.dtype("<u8")  # (a dtype object: a string is parsed every call)


def _majority(votes: np.ndarray, count: int) -> int:
    # packbits undoes unpackbits' bit order, so bit i of the result is the majority (more than half:
    # more than count // 2) of bit i of the hashes
    return int(np.packbits(votes > count // 2).view(_LE64)[0])


def _column_votes(hashes: np.ndarray) -> np.ndarray:
    # unpackbits makes one byte (0 or 1) per bit, eight to a 64-bit word. Words are added as whole words,
    # so each of their bytes counts one bit position, exactly while at most 255 are added: the hashes
    # (as many as `_padded` says: zeros fill the last column, and a zero votes for nothing) are laid out
    # `depth` (<= _DEPTH) rows deep and summed down the columns, which numpy does a long row at a time
    # (twice as fast as the float32 matrix product of earlier versions).
    depth = min(_DEPTH, len(hashes))
    words = np.unpackbits(hashes.astype(_LE64, copy=False).view(np.uint8)).view(np.uint64).reshape(depth, -1)
    # (np.add.reduce: `sum` is the same through a Python wrapper, a microsecond a call)
    counts = np.add.reduce(words, axis=0, dtype=np.uint64).view(np.uint8).reshape(-1, BITS)
    return np.add.reduce(counts, axis=0, dtype=np.uint32)  # (at most _CHUNK a bit; faster than int64)


def distance(a: int, b: int) -> int:
    """Hamming distance between two 64-bit fingerprints."""
    return bin(a ^ b).count("1")


def to_hex(fp: int) -> str:
    return f"{fp:016x}"


def from_hex(text: str) -> int:
    return int(text, 16)
