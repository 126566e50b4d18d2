"""Duplicates between a crawl and the dataset it joins, and within the crawl (SPEC 6).

Three rules, checked in this order: a product id already in the dataset (``duplicate_product``), an
image whose bytes equal one already in it (``duplicate_image``), and the released near-duplicate rule:
an image sharing at least ``round(share x its caption count)`` captions with another image
(``near_duplicate``). The first one seen is kept: the dataset's own images, then the crawl's in order.

The dataset side is asked in one pass over the table's small columns (``image_id``, ``digests``,
``caption_keys``) for the crawl's ids, digests and captions only (``known_ids``, ``DatasetMatches``):
an ingest holds what its crawl brings, not what the dataset already has. The crawl side is a
``DedupIndex`` of the crawl's images kept so far.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.data.release.table import DatasetTable, caption_key, scan_columns


class DedupIndex:
    """Images held in memory (a crawl's, a synthetic build's): product ids, image digests, captions."""

    def __init__(self, share: float = 0.7):
        self.share = share
        self.products: set[str] = set()
        self.digests: dict[str, str] = {}  # image digest -> image id
        self.images_with: dict[str, set[str]] = defaultdict(set)  # caption -> image ids

    def add(self, image_id: str, captions: Iterable[str], digest: str | None = None) -> None:
        self.products.add(image_id)
        if digest is not None:
            self.digests.setdefault(digest, image_id)
        for caption in set(captions):
            self.images_with[caption].add(image_id)

    def known_product(self, product_id: str) -> bool:
        return product_id in self.products

    def most_shared(self, image_id: str, captions: Iterable[str]) -> tuple[str, int] | None:
        """(the other image sharing the most of these captions, how many), if any shares one."""
        shared = Counter(other for c in set(captions) for other in self.images_with.get(c, ()) if other != image_id)
        best = shared.most_common(1)
        return best[0] if best else None

    def near_duplicate_of(self, image_id: str, captions: Iterable[str]) -> str | None:
        """An image sharing at least ``round(share x len(captions))`` captions with this one, if any."""
        captions = list(captions)
        needed = shared_needed(self.share, captions)
        best = self.most_shared(image_id, captions)
        return best[0] if needed >= 1 and best is not None and best[1] >= needed else None


def shared_needed(share: float, captions: Sequence[str]) -> int:
    """How many captions an image must share with another to be its near duplicate (0: never)."""
    return round(share * len(captions))


def known_ids(table: DatasetTable, ids: Collection[str]) -> set[str]:
    """Which of ``ids`` are rows of the version, in one pass over its ``image_id`` column."""
    wanted = pa.array(sorted(set(ids)), pa.string())
    found: set[str] = set()
    if not len(wanted):
        return found
    for batch in scan_columns(table, ["image_id"]):
        column = batch.column(0)
        found.update(column.filter(pc.is_in(column, value_set=wanted)).to_pylist())
    return found


@dataclass
class DatasetMatches:
    """What the dataset holds of a crawl's images: its images with their digests, and for each crawl
    image the dataset image sharing the most captions with it, where that reaches the rule's count."""

    images: dict[str, str] = field(default_factory=dict)  # digest -> the dataset image with those bytes
    near: dict[str, tuple[str, int]] = field(default_factory=dict)  # crawl id -> (dataset image, shared)

    @classmethod
    def find(cls, table: DatasetTable, crawl: Mapping[str, tuple[Sequence[str], Sequence[str]]], share: float):
        """One pass over the version for ``crawl``: image id -> (its captions, its digests)."""
        matches, ids = cls(), list(crawl)
        keys, owners = [], []  # one (caption key, crawl image) pair per distinct caption
        for number, image_id in enumerate(ids):
            for key in {caption_key(c) for c in crawl[image_id][0]}:
                keys.append(key)
                owners.append(number)
        pairs = pa.table({"key": pa.array(keys, pa.int64()), "crawl": pa.array(owners, pa.int32())})
        needed = np.array([shared_needed(share, crawl[i][0]) for i in ids], dtype=np.int64)
        digests = pa.array(sorted({d for _, ds in crawl.values() for d in ds}), pa.string())
        if not len(digests) and not keys:
            return matches
        for batch in scan_columns(table, ["image_id", "digests", "caption_keys"]):
            rows = batch.column(0)  # ids, turned into Python only where a row matches
            matches._same_bytes(rows, batch.column(1), digests)
            matches._shared_captions(rows, batch.column(2), pairs, needed, ids)
        return matches

    def _same_bytes(self, rows: pa.Array, column: pa.ListArray, digests: pa.Array) -> None:
        if not len(digests):
            return
        flat = pc.list_flatten(column)
        hit = pc.is_in(flat, value_set=digests)
        if not pc.any(hit).as_py():
            return
        parents = pc.list_parent_indices(column).filter(hit).to_pylist()
        for digest, row in zip(flat.filter(hit).to_pylist(), parents, strict=True):
            self.images.setdefault(digest, rows[row].as_py())

    def _shared_captions(
        self, rows: pa.Array, column: pa.ListArray, pairs: pa.Table, needed: np.ndarray, ids: list[str]
    ) -> None:
        """Captions each crawl image shares with each row of the batch (a join on the keys, counted per
        pair), kept where they reach the rule's count and beat the best found so far."""
        if not pairs.num_rows:
            return
        flat = pc.list_flatten(column)
        hit = pc.is_in(flat, value_set=pairs["key"])
        if not pc.any(hit).as_py():
            return
        found = pa.table({"row": pc.list_parent_indices(column).filter(hit), "key": flat.filter(hit)})
        counts = found.join(pairs, "key", join_type="inner").group_by(["crawl", "row"]).aggregate([("key", "count")])
        crawl, row, shared = (counts[name].to_numpy() for name in ("crawl", "row", "key_count"))
        reach = (needed[crawl] >= 1) & (shared >= needed[crawl])
        for number, at, count in zip(crawl[reach], row[reach], shared[reach], strict=True):
            image_id = ids[number]
            if count > self.near.get(image_id, ("", 0))[1]:
                self.near[image_id] = (rows[int(at)].as_py(), int(count))


class CrawlDedup:
    """The rules for a crawl's images in crawl order: against the dataset (``DatasetMatches``) and
    against the crawl's images kept before each one."""

    def __init__(self, dataset: DatasetMatches, share: float):
        self.dataset = dataset
        self.crawl = DedupIndex(share)

    def duplicate(self, image_id: str, captions: Sequence[str], digests: Sequence[str]) -> tuple[str, str] | None:
        """(reason, the image it duplicates) or None: the product, the first digest (the crawled
        bytes), the captions, then the other digests (the stored bytes)."""
        if image_id in self.crawl.products:
            return "duplicate_product", image_id
        same = self._same_bytes(digests[:1])
        if same is not None:
            return "duplicate_image", same
        near = self._near_duplicate(image_id, captions)
        if near is not None:
            return "near_duplicate", near
        same = self._same_bytes(digests[1:])
        return ("duplicate_image", same) if same is not None else None

    def keep(self, image_id: str, captions: Sequence[str], digests: Sequence[str]) -> None:
        for digest in digests:
            self.crawl.add(image_id, captions, digest)

    def _same_bytes(self, digests: Sequence[str]) -> str | None:
        for digest in digests:
            found = self.dataset.images.get(digest) or self.crawl.digests.get(digest)
            if found is not None:
                return found
        return None

    def _near_duplicate(self, image_id: str, captions: Sequence[str]) -> str | None:
        needed = shared_needed(self.crawl.share, captions)
        if needed < 1:
            return None
        candidates = [self.dataset.near.get(image_id), self.crawl.most_shared(image_id, captions)]
        best = max((c for c in candidates if c is not None), key=lambda c: c[1], default=None)
        return best[0] if best is not None and best[1] >= needed else None
