"""Fit: a caption written into its box as it would be published, never silently shrunk.

A caption is set in the project's font (CJK for Chinese) at the largest size that fits the box, on
one line or, where that gives a larger size (a tall box), two balanced lines; in the text colour that
reads best over the box's background (``contrast.best_text_colour``). It fits when that size reaches
the minimum legible size, a share of the image height (default 3%, never under 8 px), and the colour
reaches the minimum contrast (WCAG AA, 4.5). Otherwise the verdict names why:

    empty           nothing to write
    off_image       the box does not lie on the image
    box_too_small   not even one character fits at the minimum legible size
    too_long        the caption fits only below the minimum legible size
    low_contrast    no text colour reaches the minimum contrast over the background
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from components.data.pictures.fonts import load_font
from components.publishing.contrast import TEXT_COLOURS, WCAG_AA, Colour, best_text_colour

MIN_FONT_FRACTION = 0.03  # of the image height
MIN_FONT_PX = 8
LINE_GAP = 0.15  # between two lines, as a share of the font size
REFERENCE = {"zh": "国Ag", "en": "Ag"}  # whose ink height is a line's height, whatever the line holds
VERDICTS = ("fits", "empty", "off_image", "box_too_small", "too_long", "low_contrast")
Bounds = tuple[int, int, int, int]  # inclusive pixel corners (x1, y1, x2, y2)


@dataclass(frozen=True)
class Fit:
    """How a caption sits in its box: its lines, font size, colour and contrast, and the verdict."""

    lines: tuple[str, ...]
    font_px: int  # 0 where no size fits
    min_px: int
    colour: Colour
    contrast: float
    verdict: str

    @property
    def fits(self) -> bool:
        return self.verdict == "fits"


def min_legible_px(image_height: int, fraction: float = MIN_FONT_FRACTION, floor: int = MIN_FONT_PX) -> int:
    """The smallest font size a caption may be published at on an image ``image_height`` pixels high."""
    return max(floor, round(fraction * image_height))


def layouts(text: str, lang: str) -> list[tuple[str, ...]]:
    """One line, and (for texts that can be split) two lines split nearest the middle: between any two
    characters in Chinese, at a space in English."""
    options: list[tuple[str, ...]] = [(text,)]
    cuts = [i for i, c in enumerate(text) if c == " "] if lang == "en" else list(range(1, len(text)))
    if cuts:
        cut = min(cuts, key=lambda i: abs(2 * i - len(text)))
        options.append((text[:cut].strip(), text[cut:].strip()))
    return options


def _line_height(size: int, lang: str) -> int:
    left, top, right, bottom = load_font(lang, size).getbbox(REFERENCE[lang])
    return bottom - top


def _line_width(line: str, size: int, lang: str) -> int:
    left, _, right, _ = load_font(lang, size).getbbox(line)
    return right - left


def fits_at(lines: Sequence[str], size: int, width: int, height: int, lang: str) -> bool:
    """Whether ``lines`` at ``size`` px fit a ``width x height`` area."""
    total = len(lines) * _line_height(size, lang) + (len(lines) - 1) * round(LINE_GAP * size)
    return total <= height and all(_line_width(line, size, lang) <= width for line in lines)


def largest_size(lines: Sequence[str], width: int, height: int, lang: str) -> int:
    """The largest font size at which ``lines`` fit (0: none), by bisection: fitting only gets harder
    as the size grows."""
    low, high = 0, max(0, height)
    while low < high:
        size = (low + high + 1) // 2
        if fits_at(lines, size, width, height, lang):
            low = size
        else:
            high = size - 1
    return low


def inner_area(bounds: Bounds) -> tuple[int, int]:
    """(width, height) a box leaves for text inside a padding of a tenth of its height."""
    x1, y1, x2, y2 = bounds
    pad = max(1, (y2 - y1 + 1) // 10)
    return x2 - x1 + 1 - 2 * pad, y2 - y1 + 1 - 2 * pad


def on_image(bounds: Bounds, size: tuple[int, int]) -> bool:
    x1, y1, x2, y2 = bounds
    return 0 <= x1 <= x2 < size[0] and 0 <= y1 <= y2 < size[1]


def fit_caption(
    image: Image.Image,
    bounds: Bounds,
    text: str,
    lang: str,
    *,
    min_px: int | None = None,
    min_contrast: float = WCAG_AA,
    colours: Sequence[Colour] = TEXT_COLOURS,
) -> Fit:
    """How ``text`` fits the box ``bounds`` of ``image`` (the background it will be written on)."""
    min_px = min_legible_px(image.height) if min_px is None else min_px
    if not text.strip():
        return Fit((), 0, min_px, colours[0], 0.0, "empty")
    if not on_image(bounds, image.size):
        return Fit((text,), 0, min_px, colours[0], 0.0, "off_image")
    x1, y1, x2, y2 = bounds
    colour, contrast = best_text_colour(np.asarray(image.convert("RGB"))[y1 : y2 + 1, x1 : x2 + 1], colours)
    contrast = round(contrast, 2)
    width, height = inner_area(bounds)
    if largest_size(text[:1], width, height, lang) < min_px:
        return Fit((text,), 0, min_px, colour, contrast, "box_too_small")
    sized = [(largest_size(lines, width, height, lang), lines) for lines in layouts(text, lang)]
    size, lines = max(sized, key=lambda option: option[0])  # one line where two are no larger
    verdict = "too_long" if size < min_px else "low_contrast" if contrast < min_contrast else "fits"
    return Fit(lines, size, min_px, colour, contrast, verdict)


def draw_fit(canvas: Image.Image, bounds: Bounds, fit: Fit, lang: str) -> list[Bounds]:
    """Write ``fit``'s lines centred in ``bounds`` on ``canvas``; the pixel bounds of each line."""
    if fit.font_px <= 0:
        return []
    draw, font = ImageDraw.Draw(canvas), load_font(lang, fit.font_px)
    line_height, gap = _line_height(fit.font_px, lang), round(LINE_GAP * fit.font_px)
    top_of_ref = font.getbbox(REFERENCE[lang])[1]
    x1, y1, x2, y2 = bounds
    block = len(fit.lines) * line_height + (len(fit.lines) - 1) * gap
    y = y1 + (y2 - y1 + 1 - block) // 2
    drawn = []
    for line in fit.lines:
        left, _, right, _ = font.getbbox(line)
        x = x1 + (x2 - x1 + 1 - (right - left)) // 2
        draw.text((x - left, y - top_of_ref), line, font=font, fill=fit.colour)
        drawn.append((x, y, x + right - left - 1, y + line_height - 1))
        y += line_height + gap
    return drawn
