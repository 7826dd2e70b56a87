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


def _mix(h: np.ndarray) -> np.ndarray:
    # splitmix64's finaliser: every input bit flips each output bit with probability about 1/2.
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


def shingle_hashes(text: str) -> np.ndarray:
    """64-bit hashes of every `SHINGLE`-character window (the whole text when it is shorter)."""
    if not text:
        return np.zeros(0, dtype=np.uint64)
    return code_hashes(np.frombuffer(text.encode("utf-32-le"), dtype="<u4"))


def code_hashes(codes: np.ndarray) -> np.ndarray:
    """`shingle_hashes` of the text whose code points these are."""
    codes = codes.astype(np.uint64)
    if len(codes) < SHINGLE:
        codes = np.concatenate([codes, np.zeros(SHINGLE - len(codes), dtype=np.uint64)])
    n = len(codes) - SHINGLE + 1
    h = codes[:n] * _POSITION[0]
    for i in range(1, SHINGLE):  # SHINGLE array operations, not one per shingle
        h += codes[i:i + n] * _POSITION[i]
    return _mix(h)


def fingerprint(text: str) -> int:
    """SimHash of already normalised text; 0 for the empty string."""
    return _vote(shingle_hashes(text))


def fingerprint_codes(codes: np.ndarray) -> int:
    """`fingerprint` of the text whose code points these are (crawler/foldcodes.py gives them)."""
    return _vote(code_hashes(codes)) if len(codes) else 0


_CHUNK = 255 * 256  # hashes voted at once: bounds the 64 bytes per hash that unpackbits makes


def _vote(hashes: np.ndarray) -> int:
    n = len(hashes)
    if not n:
        return 0
    votes = np.zeros(BITS, dtype=np.int64)
    for start in range(0, n, _CHUNK):
        votes += _column_votes(hashes[start:start + _CHUNK])
    # packbits undoes unpackbits' bit order, so bit i of the result is the majority of bit i of the hashes
    return int(np.packbits(votes * 2 > n).view("<u8")[0])


def _column_votes(hashes: np.ndarray) -> np.ndarray:
    # unpackbits makes one byte (0 or 1) per bit, eight to a 64-bit word. Words are added as whole words,
    # so each of their bytes counts one bit position, exactly while at most 255 are added: the hashes
    # are laid out `depth` (<= 255) rows deep (zeros pad the last column; a zero votes for nothing) and
    # summed down the columns, which numpy does a long row at a time (float32 matrix products: 2x slower).
    n = len(hashes)
    depth = min(255, n)
    width = -(-n // depth)
    if width * depth != n:
        hashes = np.concatenate([hashes, np.zeros(width * depth - n, dtype=np.uint64)])
    words = np.unpackbits(hashes.astype("<u8", copy=False).view(np.uint8)).view(np.uint64).reshape(depth, width * 8)
    counts = words.sum(axis=0, dtype=np.uint64).view(np.uint8).reshape(width, BITS)
    return counts.sum(axis=0, dtype=np.int64)


def distance(a: int, b: int) -> int:
    """Hamming distance between two 64-bit fingerprints."""
    return bin(a ^ b).count("1")


def to_hex(fp: int) -> str:
    return f"{fp:016x}"


def from_hex(text: str) -> int:
    return int(text, 16)
