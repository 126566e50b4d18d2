"""Pictures people look at: captions drawn into their boxes, side by side with the ground truth, and
caption-type maps (paper Fig. 3)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from components.data.pictures.fonts import load_font
from components.data.record.boxes import Box
from components.data.transforms.masking import box_pixel_bounds, mask_boxes

TYPE_COLOURS = ((230, 80, 60), (60, 140, 230), (70, 180, 90), (240, 180, 30), (160, 90, 200), (90, 200, 200))
PANEL_GAP = 12
HEADER = 28


def masked_image(image: Image.Image, mask: Sequence[Box]) -> Image.Image:
    return Image.fromarray(mask_boxes(np.asarray(image.convert("RGB")), mask))


def _fit_font(draw: ImageDraw.ImageDraw, text: str, width: int, height: int, lang: str):
    size = max(8, height)
    while size > 8:
        font = load_font(lang, size)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left <= width and bottom - top <= height:
            return font, (left, top)
        size -= 1
    font = load_font(lang, 8)
    return font, draw.textbbox((0, 0), text, font=font)[:2]


def draw_captions(
    image: Image.Image, boxes: Sequence[Box], captions: Sequence[str], lang: str, colour=(255, 230, 0)
) -> Image.Image:
    """Each caption written inside its (masked, black) box, as large as the box allows."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    for box, caption in zip(boxes, captions, strict=True):
        x0, y0, x1, y1 = box_pixel_bounds(box, canvas.width, canvas.height)
        draw.rectangle((x0, y0, x1, y1), outline=(255, 255, 255))
        font, (dx, dy) = _fit_font(draw, caption, x1 - x0 - 1, y1 - y0 - 1, lang)
        draw.text((x0 + 1 - dx, y0 + 1 - dy), caption, font=font, fill=colour)
    return canvas


def side_by_side(
    left: Image.Image, right: Image.Image, titles: tuple[str, str], lang: str, footer: str = ""
) -> Image.Image:
    width = left.width + right.width + PANEL_GAP
    height = max(left.height, right.height) + HEADER + (HEADER if footer else 0)
    sheet = Image.new("RGB", (width, height), "white")
    sheet.paste(left, (0, HEADER))
    sheet.paste(right, (left.width + PANEL_GAP, HEADER))
    draw = ImageDraw.Draw(sheet)
    font = load_font(lang, 14)
    draw.text((4, 6), titles[0], font=font, fill=(0, 0, 0))
    draw.text((left.width + PANEL_GAP + 4, 6), titles[1], font=font, fill=(0, 0, 0))
    if footer:
        draw.text((4, height - HEADER + 6), footer[:80], font=load_font(lang, 12), fill=(90, 90, 90))
    return sheet


def qualitative_sheet(
    image: Image.Image,
    mask: Sequence[Box],
    boxes: Sequence[Box],
    references: Sequence[str],
    predictions: Sequence[str],
    lang: str,
    title: str = "",
) -> Image.Image:
    """The masked image twice: ground-truth captions left, generated captions right."""
    base = masked_image(image, mask)
    return side_by_side(
        draw_captions(base, boxes, references, lang),
        draw_captions(base, boxes, predictions, lang),
        ("ground truth", "generated"),
        lang,
        footer=title,
    )


def type_map(
    image: Image.Image,
    mask: Sequence[Box],
    boxes: Sequence[Box],
    reference_types: Sequence[int],
    generated_types: Sequence[int],
    lang: str,
    legend: Sequence[str] = (),
) -> Image.Image:
    """Boxes filled with the colour of their caption type: ground truth left, generated right."""
    base = masked_image(image, mask)

    def paint(types: Sequence[int]) -> Image.Image:
        canvas = base.copy()
        overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for box, kind in zip(boxes, types, strict=True):
            colour = TYPE_COLOURS[int(kind) % len(TYPE_COLOURS)]
            draw.rectangle(
                box_pixel_bounds(box, canvas.width, canvas.height), fill=(*colour, 200), outline=(255, 255, 255)
            )
        return Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")

    return side_by_side(
        paint(reference_types),
        paint(generated_types),
        ("ground-truth types", "generated types"),
        lang,
        footer="  ".join(legend),
    )


def failure_sheet(
    cells: Sequence[tuple[Image.Image, str]], lang: str, height: int = 72, width: int = 720
) -> Image.Image:
    """One row per failing caption: its box as published (cropped, scaled to ``height``) and a line
    naming the caption and the checks it failed."""
    sheet = Image.new("RGB", (width, max(1, len(cells)) * (height + 8) + HEADER), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 6), f"{len(cells)} captions failing a publishing check", font=load_font(lang, 14), fill=(0, 0, 0))
    font = load_font(lang, 13)
    for n, (crop, label) in enumerate(cells):
        top = HEADER + n * (height + 8)
        scale = height / max(1, crop.height)
        shown = crop.resize((max(1, min(width // 2, round(crop.width * scale))), height))
        sheet.paste(shown, (4, top))
        draw.rectangle((4, top, 4 + shown.width - 1, top + height - 1), outline=(220, 40, 40))
        for line, text in enumerate(label.split("\n")[:3]):
            draw.text((shown.width + 16, top + 4 + 20 * line), text[:60], font=font, fill=(0, 0, 0))
    return sheet
