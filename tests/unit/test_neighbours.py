import random

import pytest

from components.data.record.boxes import Box
from components.data.transforms.neighbours import (
    NO_NEIGHBOUR,
    chain_neighbours,
    chain_order,
    neighbour_slots,
    neighbours,
)


def point(x: float, y: float) -> Box:
    """A small box centred at (x, y)."""
    return Box(x - 0.01, y - 0.01, x + 0.01, y + 0.01)


def test_chain_is_greedy_nearest_from_first_box():
    # 0 at the top; 2 is nearest to 0, then 3 nearest to 2, then 1.
    boxes = [point(0.5, 0.1), point(0.5, 0.9), point(0.5, 0.3), point(0.5, 0.5)]
    assert chain_order(boxes) == [0, 2, 3, 1]


def test_chain_is_not_sorted_order():
    # Greedy, not a sort: from 0 the nearest is 1 (right), then 2 (far below 1), then 3.
    boxes = [point(0.1, 0.1), point(0.3, 0.1), point(0.3, 0.6), point(0.1, 0.65)]
    assert chain_order(boxes) == [0, 1, 2, 3]


def square(x: float, y: float) -> Box:
    """A box with binary-exact corners and centre, so that equal distances really are equal."""
    return Box(x - 0.0625, y - 0.0625, x + 0.0625, y + 0.0625)


def test_ties_go_to_lowest_index():
    boxes = [square(0.5, 0.5), square(0.75, 0.5), square(0.25, 0.5)]  # 1 and 2 equidistant from 0
    assert chain_order(boxes) == [0, 1, 2]
    boxes = [square(0.5, 0.5), square(0.25, 0.5), square(0.75, 0.5)]
    assert chain_order(boxes) == [0, 1, 2]
    boxes = [square(0.5, 0.5), square(0.5, 0.75), square(0.25, 0.5)]  # up/down vs left: still a tie
    assert chain_order(boxes) == [0, 1, 2]


def test_prev_next_with_ends_marked():
    boxes = [point(0.5, 0.1), point(0.5, 0.9), point(0.5, 0.3), point(0.5, 0.5)]  # chain 0 2 3 1
    assert chain_neighbours(boxes) == [(NO_NEIGHBOUR, 2), (3, NO_NEIGHBOUR), (0, 3), (2, 1)]
    assert neighbours(boxes, "top1") == chain_neighbours(boxes)


def test_top2_gives_two_each_side_nearest_first():
    boxes = [point(0.5, 0.1 + 0.2 * i) for i in range(5)]  # chain 0 1 2 3 4
    result = neighbours(boxes, "top2")
    assert result[2] == (1, 0, 3, 4)
    assert result[0] == (NO_NEIGHBOUR, NO_NEIGHBOUR, 1, 2)
    assert result[4] == (3, 2, NO_NEIGHBOUR, NO_NEIGHBOUR)


def test_single_box_has_no_neighbours():
    assert neighbours([point(0.5, 0.5)], "top1") == [(NO_NEIGHBOUR, NO_NEIGHBOUR)]
    assert neighbours([point(0.5, 0.5)], "random2") == [(NO_NEIGHBOUR, NO_NEIGHBOUR)]


def test_random2_picks_two_other_distinct_boxes():
    boxes = [point(0.1 * i + 0.05, 0.5) for i in range(6)]
    result = neighbours(boxes, "random2", random.Random(3))
    for i, (a, b) in enumerate(result):
        assert a != b and i not in (a, b) and 0 <= a < 6 and 0 <= b < 6


def test_none_and_slot_counts():
    boxes = [point(0.2, 0.2), point(0.4, 0.4)]
    assert neighbours(boxes, "none") == [(), ()]
    assert [neighbour_slots(v) for v in ("none", "random2", "top1", "top2")] == [0, 2, 2, 4]
    with pytest.raises(ValueError, match="unknown neighbour variant 'top3'"):
        neighbours(boxes, "top3")
