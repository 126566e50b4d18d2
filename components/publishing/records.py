"""A captioning request's image and record through the publishing checks: what the pyfunc model and
``caption.py`` call per image."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from components.data.ingest.ocr import RapidOcrEngine
from components.data.record.boxes import Box
from components.data.record.tokenizer import guess_mode
from components.data.release.format import ImageRecord
from components.data.transforms.masking import box_pixel_bounds
from components.publishing.choice import Publisher, Verdict
from components.publishing.contrast import WCAG_AA
from components.publishing.fit import MIN_FONT_FRACTION
from components.publishing.readback import LineReader


def caption_lang(texts: Sequence[str]) -> str:
    """The font the captions are set in: ``zh`` (CJK) when any text holds a CJK character, else ``en``."""
    return "zh" if guess_mode(texts) == "char" else "en"


def publish_record(
    publisher: Publisher, image: Image.Image, record: ImageRecord, candidates: Sequence[Sequence[tuple[str, float]]]
) -> tuple[list[Verdict], Image.Image]:
    """Per caption box of ``record`` (in its order) the chosen caption's verdict, and the published image."""
    return publish_boxes(publisher, image, record.caption_boxes, record.info, candidates)


def publish_boxes(
    publisher: Publisher,
    image: Image.Image,
    boxes: Sequence[Box],
    info: str,
    candidates: Sequence[Sequence[tuple[str, float]]],
) -> tuple[list[Verdict], Image.Image]:
    """Per box (normalised, in order) the chosen caption's verdict, and the published image."""
    bounds = [box_pixel_bounds(box, image.width, image.height) for box in boxes]
    lang = caption_lang([info] + [text for options in candidates for text, _ in options])
    return publisher.publish(image.convert("RGB"), bounds, candidates, info, lang)


def published_image(
    image: Image.Image, boxes: Sequence[Box], info: str, captions: Sequence[str], min_font_fraction: float
) -> Image.Image:
    """``image`` with ``captions`` (already chosen) set in their ``boxes`` as they would be published:
    the fit alone, no OCR and no choice; a caption with no legible size is left out."""
    setter = build_publisher(("fit",), min_font_fraction=min_font_fraction)
    return publish_boxes(setter, image, boxes, info, [[(str(caption), 0.0)] for caption in captions])[1]


def build_publisher(
    checks: Sequence[str],
    *,
    min_font_fraction: float = MIN_FONT_FRACTION,
    min_contrast: float = WCAG_AA,
    reader: LineReader | None = None,
) -> Publisher:
    """A ``Publisher`` for ``checks``; where read-back needs an OCR engine and none is given, one is
    made here (rapidocr on one thread: load it once per process and pass it on)."""
    if "read_back" in checks and reader is None:
        reader = RapidOcrEngine(threads=1)
    return Publisher(
        checks=checks,
        reader=reader if "read_back" in checks else None,
        min_font_fraction=min_font_fraction,
        min_contrast=min_contrast,
    )


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
