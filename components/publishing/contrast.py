"""Legibility against the background: WCAG 2.x relative luminance and contrast ratio, and the text
colour that reads best over every pixel of a box.

A box's background is rarely flat, so a colour is judged by a low percentile of its contrast over the
box's pixels (default the 10th): one dark corner of a light box may not decide, but a background that is
half black and half white leaves no colour readable everywhere, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Colour = tuple[int, int, int]
TEXT_COLOURS: tuple[Colour, ...] = ((0, 0, 0), (255, 255, 255))
WCAG_AA = 4.5  # normal text; WCAG 2.x success criterion 1.4.3


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB colours ``(..., 3)`` in 0..255: values in [0, 1], shape ``(...)``."""
    channel = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(channel <= 0.04045, channel / 12.92, ((channel + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def contrast_ratio(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """WCAG contrast ratio (1 to 21) between colours ``(..., 3)``, broadcast against each other."""
    a, b = relative_luminance(first), relative_luminance(second)
    return (np.maximum(a, b) + 0.05) / (np.minimum(a, b) + 0.05)


def best_text_colour(
    background: np.ndarray, colours: Sequence[Colour] = TEXT_COLOURS, percentile: float = 10.0
) -> tuple[Colour, float]:
    """(the colour of ``colours`` whose contrast over the pixels ``(H, W, 3)`` is highest at
    ``percentile``, that contrast); ties go to the earlier colour."""
    pixels = np.asarray(background).reshape(-1, 3)  # (H*W, 3)
    if len(pixels) == 0:
        raise ValueError("the background has no pixels")
    scores = [float(np.percentile(contrast_ratio(pixels, np.array(c)), percentile)) for c in colours]
    best = int(np.argmax(scores))
    return tuple(colours[best]), scores[best]
