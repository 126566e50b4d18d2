"""What the rows of an attribute column say about one of its caption rows, by the generator's own law.

A column (``layout.py``) has K caption rows, K drawn from ``COLUMN_ROWS``; D of its K - 1 gaps,
D drawn from ``COLUMN_DECOYS`` (at most K - 1), chosen uniformly, hold one price row each. The image
shows every row black, so it tells the column's number of rows R = K + D and a box's row j, not
which rows are prices. Given R, j and whatever else is known (rows that are captions, rows that are
prices), the posterior over the column's patterns gives the box's rank (1 + the captions above it)
and whether the rows right above and below it are prices: what the oracle guesses, exactly rather
than from counts. (A column too tall for its image loses price rows first; the law ignores that.)
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from dataclasses import dataclass
from math import comb

from components.data.synthetic.layout import COLUMN_DECOYS, COLUMN_ROWS

MAX_ROWS = 16  # beyond this many rows the enumeration is not worth it (the layout never draws so many)


@dataclass(frozen=True)
class RowPosterior:
    """P(rank, the row above is a price, the row below is) of one caption row."""

    places: dict[tuple[int, bool, bool], float]

    def most_likely(self) -> tuple[int, bool, bool]:
        """The most likely place as a whole (the caption is right only when all of it is)."""
        best = max(self.places.values())
        return min(place for place, p in self.places.items() if p == best)


def pattern_weight(pattern: tuple[bool, ...]) -> float:
    """P(a column's rows are this pattern of prices (True) and captions), under the generator's law."""
    if not pattern or pattern[0] or pattern[-1] or any(a and b for a, b in itertools.pairwise(pattern)):
        return 0.0  # a column starts and ends with a caption, and a gap holds one price at most
    captions = pattern.count(False)
    decoys = len(pattern) - captions
    k_prior = dict(zip(*COLUMN_ROWS, strict=True)).get(captions, 0.0) / sum(COLUMN_ROWS[1])
    drawn = [w / sum(COLUMN_DECOYS) for w in COLUMN_DECOYS]
    if decoys >= len(drawn) or decoys > captions - 1:
        return 0.0
    d_prior = drawn[decoys] if decoys < captions - 1 else sum(drawn[decoys:])  # more drawn than gaps: capped
    return k_prior * d_prior / comb(captions - 1, decoys)


@functools.lru_cache(maxsize=65536)
def row_posterior(
    rows: int, row: int, captions: frozenset[int] = frozenset(), prices: frozenset[int] = frozenset()
) -> RowPosterior:
    """The posterior of a caption row at ``row`` of a column of ``rows`` rows, knowing the rows in
    ``captions`` are captions and those in ``prices`` are prices. Evidence no pattern agrees with is
    dropped (prices first, then captions): the guess then rests on the image alone."""
    for known_captions, known_prices in ((captions, prices), (captions, frozenset()), (frozenset(), frozenset())):
        places: dict[tuple[int, bool, bool], float] = defaultdict(float)
        for pattern in _patterns(rows):
            if pattern[row] or any(pattern[r] for r in known_captions) or not all(pattern[r] for r in known_prices):
                continue
            weight = pattern_weight(pattern)
            if weight:
                above, below = row > 0 and pattern[row - 1], row + 1 < rows and pattern[row + 1]
                places[(1 + row - sum(pattern[:row]), above, below)] += weight
        if places:
            return RowPosterior(dict(places))
    return RowPosterior({(row + 1, False, False): 1.0})  # no column of this shape: every row a caption


@functools.lru_cache(maxsize=MAX_ROWS + 1)
def _patterns(rows: int) -> tuple[tuple[bool, ...], ...]:
    """Every assignment of price (True) / caption (False) to the rows, first and last rows captions."""
    if rows <= 2 or rows > MAX_ROWS:
        return (tuple([False] * rows),)
    return tuple((False, *inner, False) for inner in itertools.product((False, True), repeat=rows - 2))
