"""A contact sheet so a person can see the data: images with their boxes outlined and captions listed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from components.data.fonts import load_font
from components.data.images import open_image
from components.data.masking import box_pixel_bounds
from components.data.release import ImageRecord

CAPTION_OUTLINE = (0, 170, 0)
MASK_ONLY_OUTLINE = (220, 0, 0)  # boxes that are masked but carry no caption (prices, dropped text)
TILE = 256
LINE = 16


def _tile(record: ImageRecord, image: Image.Image, lang: str) -> Image.Image:
    image = image.convert("RGB")
    scale = TILE / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    text_height = LINE * (len(record.captions) + 1) + 8
    tile = Image.new("RGB", (TILE, TILE + text_height), "white")
    tile.paste(image, (0, 0))
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
    tiles = []
    for record in records:
        tiles.append(_tile(record, open_image(str(images_root), f"{record.image_id}.png").image, lang))
    if not tiles:
        raise ValueError("no records to draw")
    rows = (len(tiles) + columns - 1) // columns
    height = max(t.height for t in tiles)
    sheet = Image.new("RGB", (columns * (TILE + 8), rows * (height + 8)), (235, 235, 235))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * (TILE + 8) + 4, (i // columns) * (height + 8) + 4))
    return sheet
