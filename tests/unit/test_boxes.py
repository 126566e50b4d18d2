import pytest

from components.data.record.boxes import (
    Box,
    aspect_ratio,
    box_grid,
    format_box,
    grid_index,
    is_pixel_box_set,
    normalise_boxes,
    parse_box,
    validate_box,
)
from components.errors import BoxError


def test_parse_and_format_round_trip():
    text = "0.1234_0.05_0.9_0.3333333333333333"
    assert parse_box(text) == (0.1234, 0.05, 0.9, 1 / 3)
    assert parse_box(format_box(parse_box(text))) == parse_box(text)
    assert format_box(Box(0.1, 0.2, 0.3, 0.4)) == "0.1_0.2_0.3_0.4"


@pytest.mark.parametrize("text", ["0.1_0.2_0.3", "a_0.2_0.3_0.4", "0.1,0.2,0.3,0.4", "nan_0_1_1", ""])
def test_parse_rejects_malformed(text):
    with pytest.raises(BoxError):
        parse_box(text)


def test_validate_orders_and_bounds():
    with pytest.raises(BoxError, match="x2 <= x1"):
        validate_box((0.5, 0.1, 0.5, 0.2))
    with pytest.raises(BoxError, match="y2 <= y1"):
        validate_box((0.1, 0.3, 0.2, 0.2))
    with pytest.raises(BoxError, match="outside"):
        validate_box((0.1, 0.1, 1.2, 0.2))


def test_tiny_overshoot_is_clamped():
    assert validate_box((-0.001, 0.2, 1.0000001, 0.4)) == Box(0.0, 0.2, 1.0, 0.4)


def test_pixel_boxes_are_detected_per_record_and_normalised():
    raw = [(25.6, 0.0, 128.0, 64.0), (0.0, 0.0, 1.0, 1.0)]  # the second is a 1-pixel box, not the image
    assert is_pixel_box_set(raw)
    boxes = normalise_boxes(raw, image_size=(256, 128))
    assert boxes[0] == Box(0.1, 0.0, 0.5, 0.5)
    assert boxes[1] == Box(0.0, 0.0, 1 / 256, 1 / 128)
    with pytest.raises(BoxError, match="image size is unknown"):
        normalise_boxes(raw, image_size=None)


def test_grid_index_follows_spec_and_clamps():
    assert grid_index(0.0, 8) == 0
    assert grid_index(1.0, 8) == 7  # round(8) = 8 clamped to k-1
    assert grid_index(0.49, 8) == 4  # 3.92 -> 4
    assert grid_index(0.3125, 8) == 3  # 2.5 rounds half up
    assert grid_index(0.30, 8) == 2
    assert box_grid(Box(0.0, 0.5, 0.99, 1.0), 4) == (0, 2, 3, 3)


def test_aspect_ratio_uses_pixels():
    box = Box(0.0, 0.0, 0.5, 0.1)
    assert aspect_ratio(box) == pytest.approx(5.0)
    assert aspect_ratio(box, (256, 512)) == pytest.approx(128 / 51.2)
    assert aspect_ratio(Box(0.0, 0.0, 0.1, 0.4)) == pytest.approx(4.0)  # tall boxes too
