"""Text boxes: ``"x1_y1_x2_y2"`` strings, normalised fractions, grid indices, aspect ratios.

A box is top-left and bottom-right corners as fractions of the image width and height, in [0, 1]
(SPEC 2.1). Files in the wild may hold integer pixels instead; ``normalise_boxes`` detects that per
record (any value > 1) and divides by the image size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from components.errors import BoxError

# A float overshoot of up to this much outside [0, 1] (about one pixel at 256 px) is clamped;
# more than that is a bad box.
OVERSHOOT_TOLERANCE = 0.005


class Box(NamedTuple):
    """A normalised box: corners as fractions of the image width (x) and height (y)."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)


RawBox = tuple[float, float, float, float]


def parse_box(text: str) -> RawBox:
    """``"x1_y1_x2_y2"`` to four floats, as written (fractions or pixels)."""
    if not isinstance(text, str):
        raise BoxError(f"expected a string 'x1_y1_x2_y2', got {type(text).__name__}")
    parts = text.strip().split("_")
    if len(parts) != 4:
        raise BoxError(f"'{text}' does not have the form x1_y1_x2_y2")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError as err:
        raise BoxError(f"'{text}' has a coordinate that is not a number") from err
    if not all(math.isfinite(v) for v in values):
        raise BoxError(f"'{text}' has a coordinate that is not finite")
    return values  # type: ignore[return-value]


def format_box(box: Sequence[float]) -> str:
    """Four coordinates to ``"x1_y1_x2_y2"`` with the shortest text that reads back exactly."""
    return "_".join(repr(float(v)) for v in box)


def is_pixel_box_set(raw_boxes: Sequence[RawBox]) -> bool:
    """True when the boxes of one record are in pixels: any coordinate above 1."""
    return any(v > 1.0 for box in raw_boxes for v in box)


def validate_box(raw: RawBox, tolerance: float = OVERSHOOT_TOLERANCE) -> Box:
    """Check a normalised box: inside [0, 1] (tiny overshoot clamped) with x2 > x1 and y2 > y1."""
    x1, y1, x2, y2 = raw
    if any(v < -tolerance or v > 1.0 + tolerance for v in raw):
        raise BoxError(f"{format_box(raw)} lies outside the image (coordinates must be in [0, 1])")
    x1, y1, x2, y2 = (min(1.0, max(0.0, v)) for v in (x1, y1, x2, y2))
    if x2 <= x1:
        raise BoxError(f"{format_box(raw)} has x2 <= x1")
    if y2 <= y1:
        raise BoxError(f"{format_box(raw)} has y2 <= y1")
    return Box(x1, y1, x2, y2)


def normalise_box(raw: RawBox, pixel_size: tuple[int, int] | None = None) -> Box:
    """Validate one box, first dividing by ``pixel_size = (width, height)`` when it is in pixels."""
    if pixel_size is not None:
        width, height = pixel_size
        raw = (raw[0] / width, raw[1] / height, raw[2] / width, raw[3] / height)
    return validate_box(raw)


def normalise_boxes(raw_boxes: Sequence[RawBox], image_size: tuple[int, int] | None) -> list[Box]:
    """Validate one record's boxes, dividing by ``image_size = (width, height)`` when they are pixels.

    The pixel test is per record, not per box: a pixel box such as ``0_0_1_1`` in a record whose
    other boxes are clearly pixels must not be read as the whole image.
    """
    pixel_size = None
    if is_pixel_box_set(raw_boxes):
        if image_size is None:
            raise BoxError("boxes are in pixels (a value > 1) but the image size is unknown")
        pixel_size = image_size
    return [normalise_box(raw, pixel_size) for raw in raw_boxes]


def grid_index(coord: float, grid: int) -> int:
    """A fractional coordinate to its cell on a ``grid x grid`` map: ``min(k-1, round(coord*k))``.

    Rounds half up (not Python's half-to-even) so that the rule is the same in numpy and in torch.
    """
    return min(grid - 1, int(math.floor(coord * grid + 0.5)))


def box_grid(box: Box, grid: int) -> tuple[int, int, int, int]:
    """(column of x1, row of y1, column of x2, row of y2) on a ``grid x grid`` map."""
    return (grid_index(box.x1, grid), grid_index(box.y1, grid), grid_index(box.x2, grid), grid_index(box.y2, grid))


def aspect_ratio(box: Box, image_size: tuple[int, int] = (1, 1)) -> float:
    """Long side over short side of the box in pixels of an image of ``(width, height)``."""
    width = (box.x2 - box.x1) * image_size[0]
    height = (box.y2 - box.y1) * image_size[1]
    return max(width, height) / min(width, height)
