"""The dedup rules: product ids, image bytes, and the released near-duplicate rule (pure, no Ray)."""

import pytest

from components.data.ingest.dedup import DedupIndex
from components.data.record.images import image_digest


def index_with(**images):
    index = DedupIndex(share=0.7)
    for image_id, captions in images.items():
        index.add(image_id, captions, image_digest(image_id.encode()))
    return index


def test_a_known_product_then_identical_bytes_then_near_duplicates():
    index = index_with(a=["山野", "浓稠拉丝", "营养丰富"])
    assert index.duplicate("a", ["别的"], "x") == ("duplicate_product", "a")
    assert index.duplicate("b", ["别的"], image_digest(b"a")) == ("duplicate_image", "a")
    assert index.duplicate("b", ["山野", "浓稠拉丝", "新的"], "x") == ("near_duplicate", "a")  # 2 of 3
    assert index.duplicate("b", ["山野", "新的", "也新"], "x") is None  # 1 of 3


@pytest.mark.parametrize(
    "captions,shared,duplicate",
    [
        (2, 1, True),  # round(1.4) = 1: with two captions, one in common is enough
        (3, 1, False),
        (3, 2, True),  # round(2.1) = 2
        (4, 2, False),
        (4, 3, True),  # round(2.8) = 3
        (5, 3, False),
        (5, 4, True),  # round(3.5) = 4
        (6, 4, True),  # round(4.2) = 4
        (10, 6, False),
        (10, 7, True),
    ],
)
def test_near_duplicate_threshold_is_round_seven_tenths_of_the_captions(captions, shared, duplicate):
    old = [f"旧{i}" for i in range(10)]
    index = index_with(a=old)
    new = old[:shared] + [f"新{i}" for i in range(captions - shared)]
    assert (index.near_duplicate_of("b", new) == "a") is duplicate


def test_the_first_image_seen_is_kept_and_captions_count_once():
    index = DedupIndex(share=0.7)
    assert index.duplicate("first", ["补水", "保湿"], "d1") is None
    index.add("first", ["补水", "保湿"], "d1")
    assert index.duplicate("second", ["补水", "保湿"], "d2") == ("near_duplicate", "first")
    assert index.near_duplicate_of("first", ["补水", "保湿"]) is None  # never a duplicate of itself
    assert DedupIndex(share=0.0).near_duplicate_of("x", ["补水"]) is None  # share 0 turns the rule off
