"""The released pipeline's cleaning of OCR text, as pure functions (SPEC 6).

Every OCR box is masked (``all_locs``, widened a few pixels so the mask covers the ink). A text becomes
a caption when, NFKC-normalised and stripped of punctuation and spaces, it has 2 to 10 characters, at
least one CJK character, no ASCII letter, no digit and none of ``+ ! / ！ 、 >`` (prices and
discounts); a text repeated on one image is dropped, every copy; a caption must read fluently (or be
part of the product info). The kept captions are ordered by the neighbour chain from the top-most box.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from components.data.ingest.ocr import OcrText
from components.data.record.boxes import Box
from components.data.transforms.neighbours import chain_order

FORBIDDEN = frozenset("+!/！、>")  # price and discount marks; NFKC turns ！ into !, 、 stays
# Why an OCR text is not a caption.
TEXT_REASONS = (
    "price_or_discount",
    "digits",
    "latin_letters",
    "too_short",
    "too_long",
    "no_cjk",
    "repeated",
    "not_fluent",
)


def normalise(text: str) -> str:
    """NFKC (full-width forms to their plain ones: ``￥`` to ``¥``, ``１`` to ``1``), spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def core(text: str) -> str:
    """The text without punctuation and whitespace: what the length rule counts."""
    return "".join(c for c in text if not (c.isspace() or unicodedata.category(c).startswith("P")))


def is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F
    )


def text_rejection(text: str, min_chars: int = 2, max_chars: int = 10) -> str | None:
    """Why a normalised OCR text cannot be a caption, or None if the rules keep it."""
    if any(c in FORBIDDEN for c in text):
        return "price_or_discount"
    kept = core(text)
    if any(unicodedata.category(c) == "Nd" for c in kept):
        return "digits"
    if any(c.isascii() and c.isalpha() for c in kept):
        return "latin_letters"
    if len(kept) < min_chars:
        return "too_short"
    if len(kept) > max_chars:
        return "too_long"
    if not any(is_cjk(c) for c in kept):
        return "no_cjk"
    return None


def widened_box(text: OcrText, size: tuple[int, int], padding: float) -> Box:
    """An OCR box widened by ``padding`` pixels each side, clipped, as fractions of the image size."""
    width, height = size
    x1, y1, x2, y2 = text.bounds
    return Box(
        round(max(0.0, x1 - padding) / width, 4),
        round(max(0.0, y1 - padding) / height, 4),
        round(min(width - 1.0, x2 + padding) / width, 4),
        round(min(height - 1.0, y2 + padding) / height, 4),
    )


@dataclass(frozen=True)
class TextFate:
    """What became of one OCR text: its box, normalised text, and None if kept or why not."""

    box: Box
    text: str
    reason: str | None


@dataclass(frozen=True)
class CleanedImage:
    mask_boxes: tuple[Box, ...]  # every OCR box, widened: all_locs
    caption_boxes: tuple[Box, ...]  # the kept ones, in neighbour-chain order
    captions: tuple[str, ...]
    fates: tuple[TextFate, ...]  # every OCR text, in the engine's order


def clean_texts(
    texts: Sequence[OcrText],
    size: tuple[int, int],
    info: str,
    fluent: Callable[[str], bool],
    *,
    padding: float = 2.0,
    min_chars: int = 2,
    max_chars: int = 10,
) -> CleanedImage:
    """One image's OCR texts to its masks and its captions. ``fluent(text)`` is the fluency filter;
    a caption that is part of the product info is kept without asking it."""
    boxes = [widened_box(t, size, padding) for t in texts]
    normalised = [normalise(t.text) for t in texts]
    copies = Counter(core(t) for t in normalised)
    reasons = []
    for text in normalised:
        reason = text_rejection(text, min_chars, max_chars)
        if reason is None and copies[core(text)] > 1:
            reason = "repeated"
        if reason is None and core(text) not in core(info) and not fluent(text):
            reason = "not_fluent"
        reasons.append(reason)
    # The chain starts from the top-most box (reading order, whatever order the engine found them in).
    kept = sorted((i for i, reason in enumerate(reasons) if reason is None), key=lambda i: (boxes[i].y1, boxes[i].x1))
    order = chain_order([boxes[i] for i in kept]) if kept else []
    return CleanedImage(
        mask_boxes=tuple(boxes),
        caption_boxes=tuple(boxes[kept[i]] for i in order),
        captions=tuple(normalised[kept[i]] for i in order),
        fates=tuple(TextFate(b, t, r) for b, t, r in zip(boxes, normalised, reasons, strict=True)),
    )
