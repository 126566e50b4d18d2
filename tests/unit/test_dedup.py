"""The dedup rules: product ids, image bytes, and the released near-duplicate rule (pure, no Ray; the
dataset's side, read from its table, in tests/data/test_table.py)."""

import pytest

from components.data.ingest.dedup import CrawlDedup, DatasetMatches, DedupIndex
from components.data.record.images import image_digest


def index_with(**images):
    index = DedupIndex(share=0.7)
    for image_id, captions in images.items():
        index.add(image_id, captions, image_digest(image_id.encode()))
    return index


def crawl_with(dataset: DatasetMatches | None = None, **images) -> CrawlDedup:
    dedup = CrawlDedup(dataset or DatasetMatches(), share=0.7)
    for image_id, captions in images.items():
        dedup.keep(image_id, captions, [image_digest(image_id.encode())])
    return dedup


def test_a_known_product_then_identical_bytes_then_near_duplicates():
    dedup = crawl_with(a=["山野", "浓稠拉丝", "营养丰富"])
    assert dedup.duplicate("a", ["别的"], ["x"]) == ("duplicate_product", "a")
    assert dedup.duplicate("b", ["别的"], [image_digest(b"a")]) == ("duplicate_image", "a")
    assert dedup.duplicate("b", ["山野", "浓稠拉丝", "新的"], ["x"]) == ("near_duplicate", "a")  # 2 of 3
    assert dedup.duplicate("b", ["山野", "新的", "也新"], ["x"]) is None  # 1 of 3


def test_the_crawled_bytes_come_before_the_captions_and_the_stored_bytes_after():
    dataset = DatasetMatches(images={"crawled": "old-1", "stored": "old-2"})
    dedup = crawl_with(dataset, a=["山野", "浓稠拉丝"])
    assert dedup.duplicate("b", ["山野", "浓稠拉丝"], ["crawled", "y"]) == ("duplicate_image", "old-1")
    assert dedup.duplicate("b", ["山野", "浓稠拉丝"], ["x", "stored"]) == ("near_duplicate", "a")
    assert dedup.duplicate("b", ["别的"], ["x", "stored"]) == ("duplicate_image", "old-2")


def test_the_image_sharing_most_captions_is_named_the_dataset_first_on_a_tie():
    captions = ["一", "二", "三", "四"]  # round(2.8) = 3 needed
    dedup = crawl_with(DatasetMatches(near={"b": ("old", 3)}), a=captions)  # the crawl's "a" shares all 4
    assert dedup.duplicate("b", captions, ["x"]) == ("near_duplicate", "a")
    tie = crawl_with(DatasetMatches(near={"b": ("old", 4)}), a=captions)
    assert tie.duplicate("b", captions, ["x"]) == ("near_duplicate", "old")
    below = crawl_with(DatasetMatches(near={"b": ("old", 2)}))
    assert below.duplicate("b", captions, ["x"]) is None


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
    dedup = crawl_with()
    assert dedup.duplicate("first", ["补水", "保湿"], ["d1"]) is None
    dedup.keep("first", ["补水", "保湿"], ["d1"])
    assert dedup.duplicate("second", ["补水", "保湿"], ["d2"]) == ("near_duplicate", "first")
    index = dedup.crawl
    assert index.near_duplicate_of("first", ["补水", "保湿"]) is None  # never a duplicate of itself
    assert DedupIndex(share=0.0).near_duplicate_of("x", ["补水"]) is None  # share 0 turns the rule off
