"""Which boxes are a box's neighbours (SPEC 2.3).

One rule, the released code's: the boxes of an image form a greedy nearest-centre chain, starting
from the first box and repeatedly appending the remaining box whose centre is nearest (squared
Euclidean distance) to the last one appended, ties to the lowest index. A box's previous and next
neighbours are its chain neighbours. ``NO_NEIGHBOUR`` marks a chain end; the model turns it into a
dedicated learned embedding instead of the released code's ``0_0_0_0`` box, which collided with a
real box in the top-left cell.

Variants for the paper's Table A5: ``none`` (no context), ``random2`` (two random other boxes),
``top1`` (previous and next, the paper's choice), ``top2`` (two previous and two next).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from components.config import NEIGHBOUR_VARIANTS
from components.data.record.boxes import Box

NO_NEIGHBOUR = -1


def neighbour_slots(variant: str) -> int:
    """How many neighbour boxes the variant gives each box."""
    return {"none": 0, "random2": 2, "top1": 2, "top2": 4}[check_variant(variant)]


def check_variant(variant: str) -> str:
    if variant not in NEIGHBOUR_VARIANTS:
        raise ValueError(f"unknown neighbour variant '{variant}'; expected one of {', '.join(NEIGHBOUR_VARIANTS)}")
    return variant


def _squared_distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2


def chain_order(boxes: Sequence[Box]) -> list[int]:
    """Indices of ``boxes`` in greedy nearest-centre chain order, starting from box 0."""
    if not boxes:
        return []
    centers = [box.center for box in boxes]
    order = [0]
    remaining = list(range(1, len(boxes)))
    while remaining:
        last = centers[order[-1]]
        # min() keeps the first of equal keys and `remaining` is ascending: ties go to the lowest index.
        nearest = min(remaining, key=lambda i: _squared_distance(centers[i], last))
        order.append(nearest)
        remaining.remove(nearest)
    return order


def chain_neighbours(boxes: Sequence[Box], reach: int = 1) -> list[tuple[int, ...]]:
    """Per box (in input order): ``reach`` previous then ``reach`` next chain neighbours.

    Previous ones run outwards (nearest first); a missing one is ``NO_NEIGHBOUR``.
    """
    order = chain_order(boxes)
    position = {box_index: pos for pos, box_index in enumerate(order)}
    result = []
    for i in range(len(boxes)):
        pos = position[i]
        prev = [order[pos - d] if pos - d >= 0 else NO_NEIGHBOUR for d in range(1, reach + 1)]
        nxt = [order[pos + d] if pos + d < len(order) else NO_NEIGHBOUR for d in range(1, reach + 1)]
        result.append(tuple(prev + nxt))
    return result


def random_neighbours(n_boxes: int, count: int, rng: random.Random) -> list[tuple[int, ...]]:
    """Per box: ``count`` distinct other boxes drawn at random, padded with ``NO_NEIGHBOUR``."""
    result = []
    for i in range(n_boxes):
        others = [j for j in range(n_boxes) if j != i]
        picked = rng.sample(others, min(count, len(others)))
        result.append(tuple(picked + [NO_NEIGHBOUR] * (count - len(picked))))
    return result


def neighbours(boxes: Sequence[Box], variant: str = "top1", rng: random.Random | None = None) -> list[tuple[int, ...]]:
    """The neighbour indices of every box for one Table A5 variant (``neighbour_slots`` per box)."""
    check_variant(variant)
    if variant == "none":
        return [() for _ in boxes]
    if variant == "random2":
        return random_neighbours(len(boxes), 2, rng or random.Random(0))
    return chain_neighbours(boxes, reach=1 if variant == "top1" else 2)
