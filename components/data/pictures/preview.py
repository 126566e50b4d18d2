"""Contact sheets so a person can see the data: images with their boxes outlined and captions listed,
and, for ingest, every OCR text with what became of it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from components.data.pictures.fonts import load_font
from components.data.record.boxes import Box
from components.data.record.images import open_image
from components.data.release.format import ImageRecord
from components.data.transforms.masking import box_pixel_bounds

CAPTION_OUTLINE = (0, 170, 0)
MASK_ONLY_OUTLINE = (220, 0, 0)  # boxes that are masked but carry no caption (prices, dropped text)
TILE = 256
LINE = 16


def _canvas(image: Image.Image, lines: int) -> tuple[Image.Image, Image.Image]:
    """(tile, the image shrunk into its top square): room below for ``lines`` lines of text."""
    image = image.convert("RGB")
    scale = TILE / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    tile = Image.new("RGB", (TILE, TILE + LINE * lines + 8), "white")
    tile.paste(image, (0, 0))
    return tile, image


def _tile(record: ImageRecord, image: Image.Image, lang: str) -> Image.Image:
    tile, image = _canvas(image, len(record.captions) + 1)
    draw = ImageDraw.Draw(tile)
    font = load_font(lang, 12)
    for box in record.all_boxes:
        if box not in record.caption_boxes:
            draw.rectangle(box_pixel_bounds(box, image.width, image.height), outline=MASK_ONLY_OUTLINE)
    for number, box in enumerate(record.caption_boxes, start=1):
        x0, y0, x1, y1 = box_pixel_bounds(box, image.width, image.height)
        draw.rectangle((x0, y0, x1, y1), outline=CAPTION_OUTLINE, width=2)
        draw.text((x0 + 1, max(0, y0 - 12)), str(number), font=font, fill=CAPTION_OUTLINE)
    y = TILE + 4
    draw.text((4, y), f"{record.image_id}", font=font, fill=(90, 90, 90))
    for number, caption in enumerate(record.captions, start=1):
        y += LINE
        draw.text((4, y), f"{number}. {caption}", font=font, fill=(0, 0, 0))
    return tile


def contact_sheet(
    records: Sequence[ImageRecord], images_root: str | Path, lang: str = "zh", columns: int = 4
) -> Image.Image:
    """Tiles of ``records``: caption boxes in green and numbered, masked-only boxes in red."""
    tiles = [_tile(r, open_image(str(images_root), f"{r.image_id}.png").image, lang) for r in records]
    return sheet_of(tiles, columns)


def ocr_tile(image: Image.Image, fates: Sequence[tuple[Box, str, str | None]], title: str, lang: str = "zh"):
    """An image with every OCR box: kept captions in green, rejected texts in red with the reason."""
    tile, image = _canvas(image, len(fates) + 1)
    draw = ImageDraw.Draw(tile)
    font = load_font(lang, 12)
    for box, _, reason in fates:
        colour = CAPTION_OUTLINE if reason is None else MASK_ONLY_OUTLINE
        draw.rectangle(box_pixel_bounds(box, image.width, image.height), outline=colour, width=2)
    y = TILE + 4
    draw.text((4, y), title, font=font, fill=(90, 90, 90))
    for _, text, reason in fates:
        y += LINE
        label = f"+ {text}" if reason is None else f"- {text}  ({reason})"
        draw.text((4, y), label, font=font, fill=CAPTION_OUTLINE if reason is None else MASK_ONLY_OUTLINE)
    return tile


def sheet_of(tiles: Sequence[Image.Image], columns: int = 4) -> Image.Image:
    """Tiles laid out in rows of ``columns``."""
    if not tiles:
        raise ValueError("no records to draw")
    rows = (len(tiles) + columns - 1) // columns
    height = max(t.height for t in tiles)
    sheet = Image.new("RGB", (columns * (TILE + 8), rows * (height + 8)), (235, 235, 235))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * (TILE + 8) + 4, (i // columns) * (height + 8) + 4))
    return sheet
