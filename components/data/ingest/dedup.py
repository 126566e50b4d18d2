"""Duplicates between a crawl and the dataset it joins, and within the crawl (SPEC 6).

Three rules, checked in this order: a product id already in the dataset (``duplicate_product``), an
image whose bytes equal one already in it (``duplicate_image``), and the released near-duplicate rule:
an image sharing at least ``round(share x its caption count)`` captions with another image
(``near_duplicate``). The first one seen is kept: the dataset's own images, then the crawl's in order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping


class DedupIndex:
    """What the dataset (and the crawl so far) already holds: product ids, image digests, captions."""

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

    def add_records(self, captions_by_id: Mapping[str, Iterable[str]], digests: Mapping[str, str]) -> None:
        """The dataset's images: captions by image id, and the digests of the image files."""
        for image_id, captions in captions_by_id.items():
            self.add(image_id, captions)
        for digest, image_id in digests.items():
            self.digests.setdefault(digest, image_id)

    def known_product(self, product_id: str) -> bool:
        return product_id in self.products

    def near_duplicate_of(self, image_id: str, captions: Iterable[str]) -> str | None:
        """An image sharing at least ``round(share x len(captions))`` captions with this one, if any."""
        captions = list(captions)
        needed = round(self.share * len(captions))
        if needed < 1:
            return None
        shared = Counter(other for c in set(captions) for other in self.images_with.get(c, ()) if other != image_id)
        best = shared.most_common(1)
        return best[0][0] if best and best[0][1] >= needed else None

    def duplicate(self, image_id: str, captions: Iterable[str], digest: str) -> tuple[str, str] | None:
        """(reason, the image it duplicates) or None; the rules in order."""
        if image_id in self.products:
            return "duplicate_product", image_id
        if digest in self.digests:
            return "duplicate_image", self.digests[digest]
        other = self.near_duplicate_of(image_id, captions)
        return ("near_duplicate", other) if other is not None else None
