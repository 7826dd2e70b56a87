"""Stream entry ids compare as integer pairs, in one helper every package uses."""

import pytest

from newswatch import streamids


def test_ids_compare_as_numbers_not_text():
    assert streamids.older("10-0", "9-5") == "9-5"
    assert streamids.older(b"5-10", b"5-9") == "5-9"
    assert streamids.parse("1700000000000") == (1700000000000, 0)
    assert streamids.after("7-41") == "7-42"
    assert streamids.millis(b"1700000000123-4") == 1700000000123


def test_a_non_id_is_refused():
    with pytest.raises(ValueError):
        streamids.parse("abc-1")
