"""Products, marker glyphs, column glyphs and finishes drawn with Pillow: one simple, recognisable
shape per kind.

Every function draws inside the rectangle ``(x0, y0, x1, y1)`` it is given and nowhere else, so the
layout can keep shapes, markers and text apart.
"""

from __future__ import annotations

import math

from PIL import Image, ImageChops, ImageDraw

Rect = tuple[int, int, int, int]
RGB = tuple[int, int, int]


def _darker(rgb: RGB, factor: float = 0.6) -> RGB:
    return tuple(int(c * factor) for c in rgb)  # type: ignore[return-value]


def _lighter(rgb: RGB, amount: float = 0.45) -> RGB:
    return tuple(int(c + (255 - c) * amount) for c in rgb)  # type: ignore[return-value]


def _at(rect: Rect, fx: float, fy: float) -> tuple[int, int]:
    """A point at fractions of ``rect``."""
    x0, y0, x1, y1 = rect
    return int(x0 + fx * (x1 - x0)), int(y0 + fy * (y1 - y0))


def _frac(rect: Rect, fx0: float, fy0: float, fx1: float, fy1: float) -> Rect:
    """A sub-rectangle at fractions of ``rect``."""
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    return (int(x0 + fx0 * w), int(y0 + fy0 * h), int(x0 + fx1 * w), int(y0 + fy1 * h))


# -- products --------------------------------------------------------------------------------------
def _jar(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rounded_rectangle(_frac(r, 0.1, 0.3, 0.9, 1.0), radius=12, fill=c, outline=_darker(c), width=2)
    d.rectangle(_frac(r, 0.15, 0.1, 0.85, 0.32), fill=_darker(c, 0.8), outline=_darker(c), width=2)
    d.rectangle(_frac(r, 0.2, 0.5, 0.8, 0.75), fill=_lighter(c))


def _dropper(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rounded_rectangle(_frac(r, 0.2, 0.35, 0.8, 1.0), radius=8, fill=c, outline=_darker(c), width=2)
    d.rectangle(_frac(r, 0.38, 0.18, 0.62, 0.36), fill=_darker(c, 0.5))
    d.ellipse(_frac(r, 0.34, 0.0, 0.66, 0.22), fill=_darker(c, 0.4))


def _tube(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = _frac(r, 0.25, 0.0, 0.75, 0.85)
    d.polygon([(x0, y0), (x1, y0), (x1 - (x1 - x0) // 6, y1), (x0 + (x1 - x0) // 6, y1)], fill=c, outline=_darker(c))
    d.rectangle(_frac(r, 0.38, 0.85, 0.62, 1.0), fill=_darker(c, 0.5))


def _lipstick(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rectangle(_frac(r, 0.35, 0.45, 0.65, 1.0), fill=(40, 40, 45))
    d.rectangle(_frac(r, 0.38, 0.2, 0.62, 0.46), fill=(200, 170, 60))
    x0, y0, x1, y1 = _frac(r, 0.4, 0.0, 0.6, 0.21)
    d.polygon([(x0, y1), (x1, y1), (x1, y0 + (y1 - y0) // 3), (x0, y0)], fill=c)


def _pouch(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = _frac(r, 0.1, 0.05, 0.9, 1.0)
    d.polygon([(x0 + 6, y0), (x1 - 6, y0), (x1, y1), (x0, y1)], fill=c, outline=_darker(c))
    d.line([(x0 + 6, y0 + 10), (x1 - 6, y0 + 10)], fill=_darker(c), width=3)
    d.ellipse(_frac(r, 0.35, 0.45, 0.65, 0.75), fill=_lighter(c))


def _tin(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rectangle(_frac(r, 0.15, 0.15, 0.85, 1.0), fill=c, outline=_darker(c), width=2)
    d.ellipse(_frac(r, 0.15, 0.05, 0.85, 0.25), fill=_darker(c, 0.8), outline=_darker(c), width=2)
    d.rectangle(_frac(r, 0.15, 0.5, 0.85, 0.6), fill=_lighter(c))


def _carton(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = _frac(r, 0.2, 0.0, 0.8, 1.0)
    top = y0 + (y1 - y0) // 5
    d.polygon([(x0, top), ((x0 + x1) // 2, y0), (x1, top)], fill=_darker(c, 0.8))
    d.rectangle((x0, top, x1, y1), fill=c, outline=_darker(c), width=2)
    d.rectangle((x0, (top + y1) // 2, x1, (top + y1) // 2 + 8), fill=(250, 250, 250))


def _headphones(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.arc(_frac(r, 0.1, 0.05, 0.9, 0.85), start=180, end=360, fill=c, width=8)
    d.rounded_rectangle(_frac(r, 0.02, 0.45, 0.28, 0.9), radius=8, fill=c, outline=_darker(c), width=2)
    d.rounded_rectangle(_frac(r, 0.72, 0.45, 0.98, 0.9), radius=8, fill=c, outline=_darker(c), width=2)


def _cooker(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rounded_rectangle(_frac(r, 0.05, 0.3, 0.95, 1.0), radius=16, fill=c, outline=_darker(c), width=2)
    d.chord(_frac(r, 0.05, 0.1, 0.95, 0.5), start=180, end=360, fill=_darker(c, 0.8), outline=_darker(c))
    d.rectangle(_frac(r, 0.35, 0.6, 0.65, 0.75), fill=(30, 30, 30))


def _dryer(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.ellipse(_frac(r, 0.0, 0.0, 0.55, 0.45), fill=c, outline=_darker(c), width=2)
    d.rectangle(_frac(r, 0.5, 0.1, 1.0, 0.35), fill=c, outline=_darker(c), width=2)
    d.rounded_rectangle(_frac(r, 0.18, 0.4, 0.38, 1.0), radius=6, fill=_darker(c, 0.8))


def _shoe(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = _frac(r, 0.0, 0.3, 1.0, 0.85)
    w, h = x1 - x0, y1 - y0
    d.polygon(
        [(x0, y1), (x0, y0), (x0 + w * 0.35, y0), (x0 + w * 0.5, y0 + h * 0.4), (x1, y0 + h * 0.6), (x1, y1)],
        fill=c,
        outline=_darker(c),
    )
    d.rectangle((x0, y1, x1, y1 + max(4, h // 5)), fill=(245, 245, 245), outline=(90, 90, 90))


def _backpack(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rounded_rectangle(_frac(r, 0.15, 0.12, 0.85, 1.0), radius=18, fill=c, outline=_darker(c), width=2)
    d.arc(_frac(r, 0.35, 0.0, 0.65, 0.25), start=180, end=360, fill=_darker(c), width=5)
    d.rounded_rectangle(_frac(r, 0.28, 0.55, 0.72, 0.9), radius=8, fill=_darker(c, 0.8))


def _tshirt(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    pts = [
        (0.3, 0.05),
        (0.42, 0.05),
        (0.5, 0.15),
        (0.58, 0.05),
        (0.7, 0.05),
        (1.0, 0.3),
        (0.85, 0.45),
        (0.78, 0.35),
        (0.78, 1.0),
        (0.22, 1.0),
        (0.22, 0.35),
        (0.15, 0.45),
        (0.0, 0.3),
    ]
    d.polygon([(x0 + fx * w, y0 + fy * h) for fx, fy in pts], fill=c, outline=_darker(c))


def _jug(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rounded_rectangle(_frac(r, 0.1, 0.2, 0.9, 1.0), radius=10, fill=c, outline=_darker(c), width=2)
    d.rectangle(_frac(r, 0.2, 0.05, 0.4, 0.22), fill=_darker(c, 0.6))
    d.arc(_frac(r, 0.45, 0.05, 0.85, 0.45), start=180, end=360, fill=_darker(c), width=6)
    d.rectangle(_frac(r, 0.2, 0.5, 0.8, 0.8), fill=_lighter(c))


def _flask(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rounded_rectangle(_frac(r, 0.3, 0.12, 0.7, 1.0), radius=10, fill=c, outline=_darker(c), width=2)
    d.rectangle(_frac(r, 0.32, 0.0, 0.68, 0.14), fill=(160, 160, 165), outline=(90, 90, 90))


def _bottle(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rounded_rectangle(_frac(r, 0.25, 0.3, 0.75, 1.0), radius=10, fill=c, outline=_darker(c), width=2)
    d.polygon(
        [
            _at(r, 0.25, 0.3),
            _at(r, 0.4, 0.15),
            _at(r, 0.6, 0.15),
            _at(r, 0.75, 0.3),
        ],
        fill=c,
    )
    d.rectangle(_frac(r, 0.4, 0.0, 0.6, 0.16), fill=_darker(c, 0.5))


def _sachet(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rectangle(_frac(r, 0.1, 0.1, 0.9, 0.95), fill=c, outline=_darker(c), width=2)
    for fy in (0.1, 0.95):
        x0, y, x1, _ = _frac(r, 0.1, fy, 0.9, fy)
        d.line([(x0, y), (x1, y)], fill=_darker(c, 0.5), width=5)
    d.ellipse(_frac(r, 0.3, 0.3, 0.7, 0.6), fill=_lighter(c))


def _box(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rectangle(_frac(r, 0.05, 0.3, 0.95, 1.0), fill=c, outline=_darker(c), width=2)
    d.polygon(
        [
            _at(r, 0.05, 0.3),
            _at(r, 0.2, 0.12),
            _at(r, 1.0, 0.12),
            _at(r, 0.95, 0.3),
        ],
        fill=_lighter(c, 0.25),
        outline=_darker(c),
    )
    d.rectangle(_frac(r, 0.05, 0.55, 0.95, 0.62), fill=_darker(c, 0.75))


def _can(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rectangle(_frac(r, 0.25, 0.1, 0.75, 0.95), fill=c, outline=_darker(c), width=2)
    d.ellipse(_frac(r, 0.25, 0.03, 0.75, 0.17), fill=(190, 190, 195), outline=(110, 110, 115))
    d.ellipse(_frac(r, 0.25, 0.88, 0.75, 1.0), fill=_darker(c, 0.8))
    d.rectangle(_frac(r, 0.25, 0.45, 0.75, 0.55), fill=_lighter(c, 0.6))


def _phone(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rounded_rectangle(_frac(r, 0.25, 0.0, 0.75, 1.0), radius=10, fill=c, outline=_darker(c), width=2)
    d.rectangle(_frac(r, 0.3, 0.08, 0.7, 0.85), fill=(40, 45, 55))
    d.ellipse(_frac(r, 0.45, 0.89, 0.55, 0.96), fill=_darker(c, 0.6))


def _keyboard(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = _frac(r, 0.0, 0.35, 1.0, 0.8)
    d.rounded_rectangle((x0, y0, x1, y1), radius=6, fill=c, outline=_darker(c), width=2)
    rows, cols = 3, 7
    kw, kh = (x1 - x0) / cols, (y1 - y0) / rows
    for i in range(rows):
        for j in range(cols):
            d.rectangle(
                (x0 + j * kw + 2, y0 + i * kh + 2, x0 + (j + 1) * kw - 2, y0 + (i + 1) * kh - 2), fill=_lighter(c, 0.5)
            )


def _watch(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rectangle(_frac(r, 0.38, 0.0, 0.62, 1.0), fill=_darker(c, 0.7))
    d.ellipse(_frac(r, 0.15, 0.25, 0.85, 0.75), fill=c, outline=_darker(c), width=3)
    d.ellipse(_frac(r, 0.25, 0.33, 0.75, 0.67), fill=(245, 245, 245))
    cx, cy, _, _ = _frac(r, 0.5, 0.5, 0.5, 0.5)
    d.line([(cx, cy), _at(r, 0.5, 0.38)], fill=(30, 30, 30), width=2)
    d.line([(cx, cy), _at(r, 0.62, 0.5)], fill=(30, 30, 30), width=2)


def _fan(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.ellipse(_frac(r, 0.1, 0.0, 0.9, 0.6), outline=c, width=4)
    cx, cy, _, _ = _frac(r, 0.5, 0.3, 0.5, 0.3)
    for angle in (0, 120, 240):
        a = math.radians(angle)
        rad = (r[2] - r[0]) * 0.25
        d.ellipse(
            (
                cx + rad * math.cos(a) - rad * 0.45,
                cy + rad * math.sin(a) - rad * 0.45,
                cx + rad * math.cos(a) + rad * 0.45,
                cy + rad * math.sin(a) + rad * 0.45,
            ),
            fill=c,
        )
    d.rectangle(_frac(r, 0.45, 0.6, 0.55, 0.9), fill=_darker(c))
    d.rectangle(_frac(r, 0.25, 0.9, 0.75, 1.0), fill=_darker(c))


def _cap(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.chord(_frac(r, 0.1, 0.2, 0.8, 0.9), start=180, end=360, fill=c, outline=_darker(c), width=2)
    d.polygon(
        [
            _at(r, 0.1, 0.55),
            _at(r, 1.0, 0.55),
            _at(r, 0.95, 0.68),
            _at(r, 0.1, 0.62),
        ],
        fill=_darker(c, 0.8),
    )
    d.ellipse(_frac(r, 0.42, 0.16, 0.5, 0.24), fill=_darker(c, 0.6))


def _pillow(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    d.rounded_rectangle(_frac(r, 0.05, 0.3, 0.95, 0.85), radius=22, fill=c, outline=_darker(c), width=2)
    d.line([_at(r, 0.2, 0.57), _at(r, 0.8, 0.57)], fill=_lighter(c), width=3)


PRODUCT_SHAPES = {
    "jar": _jar,
    "dropper": _dropper,
    "tube": _tube,
    "lipstick": _lipstick,
    "pouch": _pouch,
    "tin": _tin,
    "carton": _carton,
    "headphones": _headphones,
    "cooker": _cooker,
    "dryer": _dryer,
    "shoe": _shoe,
    "backpack": _backpack,
    "tshirt": _tshirt,
    "jug": _jug,
    "flask": _flask,
    "bottle": _bottle,
    "sachet": _sachet,
    "box": _box,
    "can": _can,
    "phone": _phone,
    "keyboard": _keyboard,
    "watch": _watch,
    "fan": _fan,
    "cap": _cap,
    "pillow": _pillow,
}


def draw_product(draw: ImageDraw.ImageDraw, shape: str, rect: Rect, rgb: RGB) -> None:
    PRODUCT_SHAPES[shape](draw, rect, rgb)


# -- markers (not text: they survive masking and only the image tells them) ------------------------
def _droplet(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    cx, w = (x0 + x1) / 2, x1 - x0
    d.ellipse((x0, y0 + (y1 - y0) * 0.35, x1, y1), fill=c)
    d.polygon([(cx, y0), (x0 + w * 0.1, y0 + (y1 - y0) * 0.62), (x1 - w * 0.1, y0 + (y1 - y0) * 0.62)], fill=c)


def _leaf(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    d.ellipse((x0 + (x1 - x0) * 0.15, y0, x1 - (x1 - x0) * 0.15, y1), fill=c)
    d.line([((x0 + x1) / 2, y0 + 2), ((x0 + x1) / 2, y1)], fill=_darker(c), width=2)


def _hand(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    d.rounded_rectangle((x0 + w * 0.15, y0 + h * 0.45, x1 - w * 0.1, y1), radius=4, fill=c)
    for i in range(4):
        fx = x0 + w * (0.17 + 0.19 * i)
        top = y0 + h * (0.05 if i in (1, 2) else 0.15)
        d.rounded_rectangle((fx, top, fx + w * 0.14, y0 + h * 0.55), radius=3, fill=c)
    d.rounded_rectangle((x0, y0 + h * 0.5, x0 + w * 0.3, y0 + h * 0.65), radius=3, fill=c)


def _star(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    cx, cy, rad = (x0 + x1) / 2, (y0 + y1) / 2, min(x1 - x0, y1 - y0) / 2
    pts = []
    for i in range(10):
        a = -math.pi / 2 + i * math.pi / 5
        rr = rad if i % 2 == 0 else rad * 0.45
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    d.polygon(pts, fill=c)


def _sun(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    cx, cy, rad = (x0 + x1) / 2, (y0 + y1) / 2, min(x1 - x0, y1 - y0) / 2
    d.ellipse((cx - rad * 0.5, cy - rad * 0.5, cx + rad * 0.5, cy + rad * 0.5), fill=c)
    for i in range(8):
        a = i * math.pi / 4
        d.line(
            [
                (cx + rad * 0.65 * math.cos(a), cy + rad * 0.65 * math.sin(a)),
                (cx + rad * math.cos(a), cy + rad * math.sin(a)),
            ],
            fill=c,
            width=3,
        )


def _snowflake(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    cx, cy, rad = (x0 + x1) / 2, (y0 + y1) / 2, min(x1 - x0, y1 - y0) / 2
    for i in range(3):
        a = i * math.pi / 3
        d.line(
            [(cx - rad * math.cos(a), cy - rad * math.sin(a)), (cx + rad * math.cos(a), cy + rad * math.sin(a))],
            fill=c,
            width=3,
        )


def _heart(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    d.ellipse((x0, y0, x0 + w * 0.55, y0 + h * 0.55), fill=c)
    d.ellipse((x1 - w * 0.55, y0, x1, y0 + h * 0.55), fill=c)
    d.polygon([(x0 + w * 0.03, y0 + h * 0.38), (x1 - w * 0.03, y0 + h * 0.38), ((x0 + x1) / 2, y1)], fill=c)


def _shield(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    d.polygon(
        [
            (x0 + w * 0.1, y0),
            (x1 - w * 0.1, y0),
            (x1 - w * 0.1, y0 + h * 0.5),
            ((x0 + x1) / 2, y1),
            (x0 + w * 0.1, y0 + h * 0.5),
        ],
        fill=c,
    )


def _flame(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    d.polygon(
        [(x0 + w * 0.5, y0), (x1 - w * 0.1, y0 + h * 0.6), (x0 + w * 0.5, y1), (x0 + w * 0.1, y0 + h * 0.6)], fill=c
    )
    d.ellipse((x0 + w * 0.1, y0 + h * 0.4, x1 - w * 0.1, y1), fill=c)
    d.ellipse((x0 + w * 0.35, y0 + h * 0.6, x1 - w * 0.35, y1 - h * 0.08), fill=_lighter(c, 0.6))


def _bolt(d: ImageDraw.ImageDraw, r: Rect, c: RGB) -> None:
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    pts = [(0.6, 0.0), (0.15, 0.55), (0.45, 0.55), (0.3, 1.0), (0.85, 0.4), (0.55, 0.4)]
    d.polygon([(x0 + fx * w, y0 + fy * h) for fx, fy in pts], fill=c)


MARKER_GLYPHS = {
    "droplet": _droplet,
    "leaf": _leaf,
    "hand": _hand,
    "star": _star,
    "sun": _sun,
    "snowflake": _snowflake,
    "heart": _heart,
    "shield": _shield,
    "flame": _flame,
    "bolt": _bolt,
}


def draw_marker(draw: ImageDraw.ImageDraw, glyph: str, rect: Rect, rgb: RGB) -> None:
    MARKER_GLYPHS[glyph](draw, rect, rgb)


# -- column glyphs (drawn above a column's first row: their shape and colour select its modifier) --
def draw_column_glyph(draw: ImageDraw.ImageDraw, shape: str, rect: Rect, rgb: RGB) -> None:
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        draw.ellipse(rect, fill=rgb)
    elif shape == "square":
        draw.rectangle(rect, fill=rgb)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=rgb)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=rgb)
    elif shape == "ring":
        draw.ellipse(rect, outline=rgb, width=max(2, w // 5))
    elif shape == "plus":
        draw.rectangle((x0, cy - h / 6, x1, cy + h / 6), fill=rgb)
        draw.rectangle((cx - w / 6, y0, cx + w / 6, y1), fill=rgb)
    elif shape == "hexagon":
        draw.polygon(
            [(cx + w / 2 * math.cos(math.pi / 3 * i), cy + h / 2 * math.sin(math.pi / 3 * i)) for i in range(6)],
            fill=rgb,
        )
    elif shape == "bar":
        draw.rectangle((x0, cy - h / 5, x1, cy + h / 5), fill=rgb)
    else:
        raise ValueError(f"unknown column glyph '{shape}'")


# -- finishes (drawn over the product's own pixels only) --------------------------------------------
def draw_finish(image: Image.Image, finish: str, rect: Rect, product_mask: Image.Image) -> None:
    """Overlay ``finish`` on the pixels of ``product_mask`` (an ``L`` image of ``image``'s size) inside ``rect``."""
    if finish == "matte":
        return
    layer = Image.new("L", image.size, 0)
    d = ImageDraw.Draw(layer)
    x0, y0, x1, y1 = rect
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    if finish == "gloss":  # a bright band down the left of the product
        d.rectangle((x0 + w * 0.3, y0, x0 + w * 0.42, y1), fill=150)
    elif finish == "pearl":  # a grid of light dots
        step = max(5, w // 9)
        for y in range(y0 + step // 2, y1, step):
            for x in range(x0 + step // 2, x1, step):
                d.ellipse((x - 1, y - 1, x + 1, y + 1), fill=170)
    elif finish == "frost":  # fine diagonal hatching
        step = max(4, w // 14)
        for k in range(-h, w, step):
            d.line([(x0 + k, y1), (x0 + k + h, y0)], fill=110, width=1)
    else:
        raise ValueError(f"unknown finish '{finish}'")
    image.paste((255, 255, 255), None, ImageChops.multiply(layer, product_mask))
