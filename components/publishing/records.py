"""A captioning request's image and record through the publishing checks: what the pyfunc model and
``caption.py`` call per image."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from components.data.record.tokenizer import guess_mode
from components.data.release.format import ImageRecord
from components.data.transforms.masking import box_pixel_bounds
from components.publishing.choice import Publisher, Verdict


def caption_lang(texts: Sequence[str]) -> str:
    """The font the captions are set in: ``zh`` (CJK) when any text holds a CJK character, else ``en``."""
    return "zh" if guess_mode(texts) == "char" else "en"


def publish_record(
    publisher: Publisher, image: Image.Image, record: ImageRecord, candidates: Sequence[Sequence[tuple[str, float]]]
) -> tuple[list[Verdict], Image.Image]:
    """Per caption box of ``record`` (in its order) the chosen caption's verdict, and the published image."""
    bounds = [box_pixel_bounds(box, image.width, image.height) for box in record.caption_boxes]
    lang = caption_lang([record.info] + [text for options in candidates for text, _ in options])
    return publisher.publish(image.convert("RGB"), bounds, candidates, record.info, lang)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
