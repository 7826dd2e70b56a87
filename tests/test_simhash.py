"""SimHash: the vectorised fingerprint equals the textbook per-shingle algorithm, and distances behave."""

from __future__ import annotations

import hashlib
import itertools
import random

import numpy as np
import pytest

from crawler import simhash

TEXT = ("美俄两国外长在利雅得举行会谈双方同意恢复驻对方国家使馆的正常运作并成立高级别工作组"
        "讨论结束俄乌冲突的途径会谈持续四个半小时美方代表称这是迈向和平的第一步俄方则表示会谈富有成效")


def reference(text: str) -> int:
    """Charikar's SimHash with the same shingle hash, one Python step per shingle and bit."""
    if not text:
        return 0
    codes = [ord(c) for c in text] + [0] * max(0, simhash.SHINGLE - len(text))
    mask = (1 << 64) - 1
    votes = [0] * 64
    count = len(codes) - simhash.SHINGLE + 1
    for i in range(count):
        h = 0
        for j in range(simhash.SHINGLE):
            h = (h + codes[i + j] * int(simhash._POSITION[j])) & mask
        h ^= h >> 30
        h = (h * 0xBF58476D1CE4E5B9) & mask
        h ^= h >> 27
        h = (h * 0x94D049BB133111EB) & mask
        h ^= h >> 31
        for bit in range(64):
            votes[bit] += (h >> bit) & 1
    return sum(1 << bit for bit in range(64) if votes[bit] * 2 > count)


@pytest.mark.parametrize("text", ["", "a", "ab", "abc", "美俄", TEXT, TEXT[:97], "x" * 500, "😀𠀀abc"])
def test_vectorised_fingerprint_equals_reference(text):
    assert simhash.fingerprint(text) == reference(text)


def test_random_texts_equal_reference():
    rng = random.Random(7)
    for _ in range(30):
        text = "".join(chr(rng.randrange(0x4E00, 0x4E80)) for _ in range(rng.randrange(1, 300)))
        assert simhash.fingerprint(text) == reference(text)


def test_shingle_hashes_are_one_per_window():
    assert len(simhash.shingle_hashes(TEXT)) == len(TEXT) - simhash.SHINGLE + 1
    assert simhash.shingle_hashes("").dtype == np.uint64


def test_fingerprint_is_64_bits_and_hex_round_trips():
    fp = simhash.fingerprint(TEXT)
    assert 0 < fp < 2**64
    assert len(simhash.to_hex(fp)) == 16
    assert simhash.from_hex(simhash.to_hex(fp)) == fp
    assert simhash.to_hex(0) == "0" * 16


def test_distance_is_hamming():
    assert simhash.distance(0, 0) == 0
    assert simhash.distance(0, 2**64 - 1) == 64
    assert simhash.distance(0b1011, 0b0001) == 2


def test_small_edit_is_near_and_other_text_is_far():
    edited = TEXT.replace("四个半小时", "四个多小时")
    other = hashlib.sha256(b"x").hexdigest() * 3  # unrelated characters
    assert simhash.distance(simhash.fingerprint(TEXT), simhash.fingerprint(edited)) <= 3
    assert simhash.distance(simhash.fingerprint(TEXT), simhash.fingerprint(other)) > 12


def test_unrelated_texts_spread_around_32_bits():
    rng = random.Random(3)
    fps = [simhash.fingerprint("".join(chr(rng.randrange(0x4E00, 0x9FA0)) for _ in range(400)))
           for _ in range(40)]
    distances = [simhash.distance(a, b) for a, b in itertools.pairwise(fps)]
    assert 26 <= sum(distances) / len(distances) <= 38
    assert min(distances) > 10


@pytest.mark.parametrize("count", [1, 2, 63, 64, 65, 255, 256, 511, 1900, 64 * 1024 + 1, 200_000])
def test_votes_count_every_bit_at_any_count(count):
    """The column sums (at most `_DEPTH` words a column, in chunks) equal plain per-bit counts."""
    hashes = np.random.default_rng(count).integers(0, 2**64, size=count, dtype=np.uint64, endpoint=False)
    hashes[::7] = 2**64 - 1  # columns of all ones: a byte that overflowed would show
    votes = np.unpackbits(hashes.astype("<u8").view(np.uint8)).reshape(-1, 64).sum(axis=0)
    assert simhash._vote(hashes) == int(np.packbits(votes * 2 > count).view("<u8")[0])
    all_ones = np.full(count, 2**64 - 1, dtype=np.uint64)
    assert simhash._vote(all_ones) == 2**64 - 1


@pytest.mark.parametrize("length", [1, 2, 3, 4, 67, 257, 1900, 64 * 1024 + 2, 64 * 1024 + 300])
def test_fingerprint_of_code_points_equals_fingerprint_of_text(length):
    codes = np.random.default_rng(length).integers(0x4E00, 0x4E80, size=length).astype(np.uint32)
    text = codes.tobytes().decode("utf-32-le")
    assert simhash.fingerprint_codes(codes) == simhash.fingerprint(text)
    if length <= 1900:
        assert simhash.fingerprint(text) == reference(text)
