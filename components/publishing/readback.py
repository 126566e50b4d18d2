"""Read-back: what the OCR engine the project ships reads off a caption as it was drawn.

A caption reads back when the text recognised on each of its drawn lines, joined, equals the caption
after NFKC normalisation with whitespace removed (recognisers drop and add spaces between words). Each
line is cropped with a margin of a quarter of its height and read by the recognition model alone
(``RapidOcrEngine.read_line``): the renderer knows where every line is, so no detection is needed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from components.publishing.fit import Bounds


class LineReader(Protocol):
    def read_line(self, image: Image.Image) -> tuple[str, float]:
        """(text, score) of an image holding one line of text."""


@dataclass(frozen=True)
class ReadBack:
    text: str  # what the engine read, lines joined
    score: float  # the lowest line score
    passed: bool


def comparable(text: str) -> str:
    """NFKC with whitespace removed: the form in which a caption and what OCR read are compared."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def line_crop(canvas: Image.Image, line: Bounds) -> Image.Image:
    """The drawn line with a margin of a quarter of its height, kept on the canvas."""
    x1, y1, x2, y2 = line
    margin = max(2, (y2 - y1 + 1) // 4)
    box = (
        max(0, x1 - margin),
        max(0, y1 - margin),
        min(canvas.width, x2 + margin + 1),
        min(canvas.height, y2 + margin + 1),
    )
    return canvas.crop(box)


def read_back(reader: LineReader, canvas: Image.Image, lines: Sequence[Bounds], caption: str) -> ReadBack:
    """What ``reader`` reads off the ``lines`` drawn on ``canvas``, and whether it is ``caption``."""
    if not lines:
        return ReadBack("", 0.0, False)
    read = [reader.read_line(line_crop(canvas, line)) for line in lines]
    text = "".join(t for t, _ in read)
    return ReadBack(text, round(min(s for _, s in read), 4), comparable(text) == comparable(caption))
