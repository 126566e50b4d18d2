"""Fit: the largest size that fits, two lines only where they are larger, named verdicts, never shrunk."""

import numpy as np
import pytest
from PIL import Image

from components.publishing.fit import (
    draw_fit,
    fit_caption,
    fits_at,
    inner_area,
    largest_size,
    layouts,
    min_legible_px,
)

BEIGE = (240, 220, 200)


@pytest.fixture
def page():
    return Image.new("RGB", (256, 256), BEIGE)


def test_min_legible_size_follows_the_image_height_with_a_floor():
    assert min_legible_px(1000) == 30
    assert min_legible_px(256) == 8
    assert min_legible_px(100) == 8


def test_layouts_split_chinese_anywhere_and_english_at_a_space():
    assert layouts("奢华零脂体验推荐", "zh") == [("奢华零脂体验推荐",), ("奢华零脂", "体验推荐")]
    assert layouts("free fast shipping", "en") == [("free fast shipping",), ("free fast", "shipping")]
    assert layouts("好", "zh") == [("好",)]


def test_largest_size_is_the_edge_between_fitting_and_not():
    width, height = 150, 24
    size = largest_size(("选莱格官方旗舰",), width, height, "zh")
    assert size > 10
    assert fits_at(("选莱格官方旗舰",), size, width, height, "zh")
    assert not fits_at(("选莱格官方旗舰",), size + 1, width, height, "zh")


def test_a_wide_box_takes_one_line_and_a_tall_box_two(page):
    wide = fit_caption(page, (20, 20, 200, 45), "选莱格官方旗舰", "zh")
    assert wide.verdict == "fits" and wide.lines == ("选莱格官方旗舰",) and wide.font_px >= 18
    tall = fit_caption(page, (20, 100, 70, 160), "奢华零脂体验推荐", "zh")
    assert tall.verdict == "fits" and tall.lines == ("奢华零脂", "体验推荐")
    assert tall.font_px > largest_size(("奢华零脂体验推荐",), *inner_area((20, 100, 70, 160)), "zh")


def test_a_long_caption_in_a_small_box_is_too_long_not_shrunk(page):
    fit = fit_caption(page, (20, 60, 70, 80), "奢华零脂体验推荐", "zh")
    assert fit.verdict == "too_long" and 0 < fit.font_px < fit.min_px
    assert fit_caption(page, (20, 60, 70, 80), "奢华零脂体验推荐", "zh", min_px=6).fits  # a smaller minimum


@pytest.mark.parametrize(
    "bounds, text, verdict",
    [
        ((10, 10, 12, 12), "好", "box_too_small"),
        ((20, 20, 300, 40), "好", "off_image"),
        ((5, 5, 100, 30), " ", "empty"),
    ],
)
def test_bad_boxes_and_captions_get_named_verdicts(page, bounds, text, verdict):
    fit = fit_caption(page, bounds, text, "zh")
    assert fit.verdict == verdict and not fit.fits and fit.font_px == 0


def test_a_background_with_no_readable_colour_is_low_contrast():
    stripes = np.zeros((64, 256, 3), np.uint8)
    stripes[:, ::2] = 255  # alternate black and white columns
    fit = fit_caption(Image.fromarray(stripes), (10, 10, 200, 40), "选莱格", "zh")
    assert fit.verdict == "low_contrast" and fit.contrast < 1.5 and fit.font_px >= 8


def test_drawn_text_lands_inside_its_box_in_the_chosen_colour(page):
    bounds = (20, 100, 70, 160)
    fit = fit_caption(page, bounds, "奢华零脂体验推荐", "zh")
    lines = draw_fit(page, bounds, fit, "zh")
    assert len(lines) == 2
    for x1, y1, x2, y2 in lines:
        assert bounds[0] <= x1 <= x2 <= bounds[2] and bounds[1] <= y1 <= y2 <= bounds[3]
    pixels = np.asarray(page)
    inside = pixels[bounds[1] : bounds[3] + 1, bounds[0] : bounds[2] + 1].reshape(-1, 3)
    ink = np.abs(inside.astype(int) - BEIGE).sum(axis=1) > 200  # dark pixels: the chosen black
    assert fit.colour == (0, 0, 0) and ink.sum() > 20
    assert (pixels != BEIGE).any(axis=2).sum() == (inside != BEIGE).any(axis=1).sum()  # nothing spilled
