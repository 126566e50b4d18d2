"""WCAG contrast: the standard's reference values, the readable colour chosen, a busy background refused."""

import numpy as np
import pytest

from components.publishing.contrast import WCAG_AA, best_text_colour, contrast_ratio, relative_luminance


def test_reference_values_of_the_standard():
    assert relative_luminance(np.array([255, 255, 255])) == pytest.approx(1.0)
    assert relative_luminance(np.array([0, 0, 0])) == pytest.approx(0.0)
    assert contrast_ratio(np.array([0, 0, 0]), np.array([255, 255, 255])) == pytest.approx(21.0)
    assert contrast_ratio(np.array([255, 255, 255]), np.array([255, 255, 255])) == pytest.approx(1.0)
    # #777777 on white is the usual example just under AA: 4.48
    assert contrast_ratio(np.array([0x77] * 3), np.array([255, 255, 255])) == pytest.approx(4.48, abs=0.01)


def test_contrast_is_symmetric_and_broadcasts():
    pixels = np.array([[[10, 200, 30], [250, 250, 0]]])  # (1, 2, 3)
    forward, backward = contrast_ratio(pixels, np.array([0, 0, 0])), contrast_ratio(np.array([0, 0, 0]), pixels)
    assert forward.shape == (1, 2)
    np.testing.assert_allclose(forward, backward)


def test_dark_text_on_a_light_box_and_light_text_on_a_dark_one():
    light, dark = np.full((8, 20, 3), 235), np.full((8, 20, 3), 30)
    assert best_text_colour(light)[0] == (0, 0, 0)
    colour, contrast = best_text_colour(dark)
    assert colour == (255, 255, 255) and contrast > 15


def test_a_flat_background_always_has_a_readable_colour():
    for grey in range(0, 256, 5):
        assert best_text_colour(np.full((4, 4, 3), grey))[1] >= WCAG_AA


def test_a_half_black_half_white_box_has_no_readable_colour():
    box = np.zeros((10, 40, 3))
    box[:, 20:] = 255
    colour, contrast = best_text_colour(box)
    assert contrast < 1.5  # whichever colour is chosen, half the box hides it


def test_an_empty_background_is_an_error():
    with pytest.raises(ValueError, match="no pixels"):
        best_text_colour(np.zeros((0, 5, 3)))
