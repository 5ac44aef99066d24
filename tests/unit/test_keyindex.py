"""KeyIndex: texts numbered in the order first added, as a dict of them would number them."""

from __future__ import annotations

import random
from array import array

import pytest

from bulkops.keyindex import KeyIndex


def test_numbers_keys_in_the_order_they_first_came_like_a_dict() -> None:
    rng = random.Random(7)
    # Enough keys to grow the table many times, with repeats and near-identical texts.
    keys = [f"site-{rng.randrange(40_000)}" for _ in range(60_000)]
    keys += ["", "é", "e\u0301", "\U0001f600", "site-1 ", " site-1"]
    index, expected = KeyIndex(), dict[str, int]()
    for key in keys:
        number, new = index.add(key)
        assert new == (key not in expected)
        assert number == expected.setdefault(key, len(expected))
    assert len(index) == len(expected)
    for key, number in expected.items():
        assert index.find(key) == number
        assert index.key(number) == key
    assert index.find("site-40000") == -1
    assert index.find("never") == -1


def test_holds_digests_as_bytes_and_texts_json_allows() -> None:
    index = KeyIndex()
    lone = "a\ud800b"  # a JSON file may spell a lone surrogate; it is still a key
    assert index.add(b"\x00\xff" * 8) == (0, True)
    assert index.add(lone) == (1, True)
    assert index.add(lone) == (1, False)
    assert index.find(b"\x00\xff" * 8) == 0
    assert index.key(1) == lone
    assert index.find(b"\x00\xfe" * 8) == -1


def test_an_entry_that_was_never_added_is_an_index_error() -> None:
    index = KeyIndex()
    index.add("a")
    with pytest.raises(IndexError):
        index.key(1)
    with pytest.raises(IndexError):
        index.key(-1)


def test_end_offsets_past_what_their_array_holds_are_kept_in_a_wider_one() -> None:
    """Offsets are 4 bytes until the text passes 4 GiB; then 8. Shown here on a 1-byte array,
    which the text outgrows after 255 bytes."""
    index = KeyIndex()
    index._ends = array("B", [0])
    keys = [f"key-{n:04}" for n in range(100)]  # 800 bytes of text
    for key in keys:
        index.add(key)
    assert index._ends.typecode == "q"
    assert [index.find(key) for key in keys] == list(range(100))
    assert [index.key(n) for n in range(100)] == keys
