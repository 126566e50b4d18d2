"""The column law the oracle reasons with (components/data/synthetic/columns.py), checked against the
generator's own draws: what the image and the caption chain tell of a column row's place."""

import random
from collections import Counter

import pytest

from components.data.synthetic.columns import _patterns, pattern_weight, row_posterior
from components.data.synthetic.layout import COLUMN_DECOYS, COLUMN_ROWS


def draw_column(rng: random.Random) -> tuple[bool, ...]:
    """A column's rows (True: a price) drawn the way the layout draws them."""
    k = rng.choices(COLUMN_ROWS[0], weights=COLUMN_ROWS[1])[0]
    decoys = min(rng.choices(range(len(COLUMN_DECOYS)), weights=COLUMN_DECOYS)[0], k - 1)
    priced = set(rng.sample(range(1, k), decoys))
    rows = [False]
    for rank in range(2, k + 1):
        rows += [True, False] if rank - 1 in priced else [False]
    return tuple(rows)


def test_the_law_is_a_distribution_over_patterns():
    total = sum(pattern_weight(p) for rows in range(1, 12) for p in _patterns(rows))
    assert total == pytest.approx(1.0)
    assert pattern_weight((True, False, False)) == 0 and pattern_weight((False, True, True, False)) == 0


def test_the_posterior_matches_the_generators_frequencies():
    rng = random.Random(0)
    seen: dict[tuple[int, int], Counter] = {}
    for _ in range(60000):
        rows = draw_column(rng)
        for j, price in enumerate(rows):
            if not price:
                place = (1 + j - sum(rows[:j]), j > 0 and rows[j - 1], j + 1 < len(rows) and rows[j + 1])
                seen.setdefault((len(rows), j), Counter())[place] += 1
    for (rows, j), counts in seen.items():
        if sum(counts.values()) < 2000:
            continue
        posterior = row_posterior(rows, j).places
        for place, n in counts.items():
            assert posterior[place] / sum(posterior.values()) == pytest.approx(n / sum(counts.values()), abs=0.02)


def test_the_chain_tells_what_the_image_cannot():
    # five rows, the box in the middle: the image leaves its rank open (a price above it or not) ...
    assert len({place[0] for place in row_posterior(5, 2).places}) > 1
    # ... its chain neighbours settle it: a caption right above means no price there
    rank, above, below = row_posterior(5, 2, frozenset({1, 3}), frozenset()).most_likely()
    assert (rank, above, below) == (3, False, False)
    rank, above, below = row_posterior(5, 2, frozenset({0}), frozenset({1})).most_likely()
    assert (rank, above) == (2, True)


def test_evidence_no_column_agrees_with_is_dropped():
    assert row_posterior(4, 1, frozenset({2}), frozenset({2})).places  # contradictory: the image alone
    assert row_posterior(2, 1).most_likely() == (2, False, False)
