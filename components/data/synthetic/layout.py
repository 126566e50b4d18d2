"""Where everything goes on a synthetic product image, and drawing it.

The brand badge sits in the top band and the banner on a strip at the bottom. One half holds the
product (its category's shape in its colour and finish) with its colour call-out beside it and its
marker call-outs (a glyph, its phrase right of it) around it. The other half may hold an attribute
column: a column glyph, then rows at one pitch from a random start, some of them decoys (a price or
a discount: masked like every text, never a caption), so the image shows more black rows than the
column has captions. Spec boxes, slogans and stray prices go wherever there is room. A box is its
text's ink box plus a small pad, so its aspect ratio tells its caption's length class.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field, replace

from PIL import Image, ImageDraw

from components.data.pictures.fonts import load_font
from components.data.synthetic.grammar import LENGTH_CLASSES, BoxPlan, Item, Part, caption_text, compose, glyph_drawing
from components.data.synthetic.lexicon import COLUMN_GLYPHS, FINISHES, Lexicon
from components.data.synthetic.shapes import Rect, draw_column_glyph, draw_finish, draw_marker, draw_product

# (width, height) with short side 256, and how often each occurs.
IMAGE_SIZES = ((256, 256), (256, 341), (341, 256))
IMAGE_SIZE_WEIGHTS = (0.5, 0.35, 0.15)
MARGIN = 6
PAD = 2  # a text box is the text's ink box plus this many pixels each side
TEXT_COLOURS = ((20, 20, 20), (60, 30, 20), (20, 40, 90), (120, 20, 30), (30, 80, 40), (80, 30, 100))
DECOY_RGB = (220, 30, 30)

# How often each slot appears, and its length classes (see grammar.py).
P_BRAND = 0.55
P_COLUMN = 0.45
P_COLOUR = 0.38
P_MARKER = 0.65  # each of the item's markers
P_SPEC = 0.3
P_BANNER = 0.32
SLOGANS = ((0, 1, 2), (0.8, 0.18, 0.02))
STRAY_PRICES = ((0, 1), (0.6, 0.4))
LENGTH_WEIGHTS = {
    "brand": (0.4, 0.35, 0.25),
    "column": (0.35, 0.45, 0.2),
    "colour": (0.1, 0.35, 0.55),
    "marker": (0.3, 0.7),
}
COLUMN_ROWS = ((3, 4, 5, 6), (0.4, 0.3, 0.2, 0.1))
COLUMN_DECOYS = (0.45, 0.4, 0.15)  # how many of a column's gaps hold a price row: P(0), P(1), P(2)


@dataclass
class TextBox:
    """A text drawn on the image: a caption (``plan`` says what it is) or a decoy / stray price."""

    kind: str  # a slot, "decoy" or "price"
    text: str
    rect: Rect  # inclusive pixels
    font_size: int
    rgb: tuple[int, int, int]
    origin: tuple[int, int]  # where the text is drawn
    plan: BoxPlan | None = None
    parts: tuple[Part, ...] = ()
    row: int = -1  # in a column: the row's index among the column's rows, decoys included
    rows: int = 0  # in a column: how many rows it has


@dataclass
class Layout:
    size: tuple[int, int]
    background: tuple[tuple[int, int, int], tuple[int, int, int]]
    product_rect: Rect = (0, 0, 0, 0)
    captions: list[TextBox] = field(default_factory=list)
    others: list[TextBox] = field(default_factory=list)  # decoys and stray prices: masked, not captions
    markers: list[tuple[str, Rect, tuple[int, int, int]]] = field(default_factory=list)
    column_glyph: tuple[str, Rect, tuple[int, int, int]] | None = None
    column_area: Rect | None = None  # kept free of other texts around the column
    banner_band: Rect | None = None
    occupied: list[Rect] = field(default_factory=list)

    def is_free(self, rect: Rect, gap: int = 3) -> bool:
        x0, y0, x1, y1 = rect
        width, height = self.size
        if x0 < MARGIN // 2 or y0 < MARGIN // 2 or x1 > width - MARGIN // 2 or y1 > height - MARGIN // 2:
            return False
        return all(x1 + gap < a0 or a1 + gap < x0 or y1 + gap < b0 or b1 + gap < y0 for a0, b0, a1, b1 in self.occupied)

    def take(self, rect: Rect) -> None:
        self.occupied.append(rect)

    def add(self, box: TextBox) -> None:
        (self.captions if box.plan is not None else self.others).append(box)
        self.take(box.rect)

    def texts(self) -> set[str]:
        return {b.text for b in self.captions}


# -- text geometry -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=65536)
def text_extent(lang: str, text: str, size: int) -> tuple[int, int, int, int]:
    """(width, height, dx, dy) of the padded ink box of ``text`` drawn at the origin."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=load_font(lang, size))
    x0, y0, x1, y1 = int(left) - PAD, int(top) - PAD, int(right) + PAD - 1, int(bottom) + PAD - 1
    return x1 - x0 + 1, y1 - y0 + 1, x0, y0


def text_box(lang: str, kind: str, text: str, size: int, top_left: tuple[int, int], rgb, **extra) -> TextBox:
    """A text whose box has its top-left corner at ``top_left``."""
    w, h, dx, dy = text_extent(lang, text, size)
    x, y = top_left
    return TextBox(kind, text, (x, y, x + w - 1, y + h - 1), size, rgb, (x - dx, y - dy), **extra)


def fit_font(lang: str, texts, size: int, max_width: int) -> int:
    while size > 10 and max(text_extent(lang, t, size)[0] for t in texts) > max_width:
        size -= 1
    return size


def place_random(
    layout: Layout, lang: str, box_args: dict, rng: random.Random, region: Rect, extra_left: int = 0, tries: int = 40
) -> TextBox | None:
    """A text put somewhere free inside ``region`` (pixels); None when nothing fits. ``extra_left``
    keeps that many pixels free left of it (for a marker glyph)."""
    x_lo, y_lo, x_hi, y_hi = region
    w, h, _, _ = text_extent(lang, box_args["text"], box_args["size"])
    for _ in range(tries):
        x = rng.randint(x_lo + MARGIN + extra_left, max(x_lo + MARGIN + extra_left, x_hi - MARGIN - w))
        y = rng.randint(y_lo, max(y_lo, y_hi - h))
        box = text_box(lang, top_left=(x, y), **box_args)
        glyph = (box.rect[0] - extra_left, box.rect[1], box.rect[0] - 4, box.rect[3]) if extra_left else None
        if layout.is_free(box.rect) and (glyph is None or layout.is_free(glyph)):
            return box
    return None


# -- planning ----------------------------------------------------------------------------------------
class _Planner:
    """One image's layout, step by step (each step a method; they share the image's random stream)."""

    def __init__(self, item: Item, lexicon: Lexicon, rng: random.Random):
        self.item, self.lexicon, self.rng, self.lang = item, lexicon, rng, lexicon.lang
        width, height = rng.choices(IMAGE_SIZES, weights=IMAGE_SIZE_WEIGHTS)[0]
        top = self._light()
        self.layout = Layout((width, height), (top, self._light() if rng.random() < 0.5 else top))
        self.width, self.height, self.half = width, height, width // 2
        product_left = rng.random() < 0.5
        self.product_region = (0, self.half) if product_left else (self.half, width)
        self.column_region = (self.half, width) if product_left else (0, self.half)
        self.font = rng.randint(14, 19)
        self.top_limit, self.bottom_limit = int(0.12 * height), int(0.9 * height)

    def _light(self) -> tuple[int, int, int]:
        return tuple(self.rng.randint(215, 255) for _ in range(3))  # type: ignore[return-value]

    def _ink(self) -> tuple[int, int, int]:
        return self.rng.choice(TEXT_COLOURS)

    def _plan(self, slot: str, **values) -> BoxPlan:
        length = 0
        if LENGTH_CLASSES[slot] > 1:
            length = self.rng.choices(range(LENGTH_CLASSES[slot]), weights=LENGTH_WEIGHTS[slot])[0]
        return BoxPlan(slot, length, **values)

    def _caption(self, plan: BoxPlan) -> tuple[str, tuple[Part, ...]] | None:
        """The text and parts of ``plan``; None if the image already has that text (no repeats)."""
        parts = compose(self.lexicon, self.item, plan)
        text = caption_text(self.lexicon, parts)
        return None if text in self.layout.texts() else (text, parts)

    def brand(self) -> None:
        plan = self._plan("brand")
        text, parts = self._caption(plan)  # the first caption: never a repeat
        size = fit_font(self.lang, (text,), self.font + self.rng.randint(2, 6), self.width - 2 * MARGIN)
        w, _, _, _ = text_extent(self.lang, text, size)
        top_left = (
            self.rng.randint(MARGIN, self.width - MARGIN - w),
            self.rng.randint(MARGIN, int(0.06 * self.height)),
        )
        box = text_box(self.lang, "brand", text, size, top_left, self._ink(), plan=plan, parts=parts)
        self.layout.add(box)
        self.top_limit = max(self.top_limit, box.rect[3] + 6)

    def banner(self) -> None:
        plan = self._plan("banner")
        text, parts = self._caption(plan)
        size = fit_font(self.lang, (text,), self.font + self.rng.randint(0, 3), self.width - 4 * MARGIN)
        w, h, _, _ = text_extent(self.lang, text, size)
        y_bottom = self.height - MARGIN - h - 2
        y = self.rng.randint(min(int(0.9 * self.height), y_bottom), y_bottom)
        x = self.rng.randint(2 * MARGIN, self.width - 2 * MARGIN - w)
        box = text_box(self.lang, "banner", text, size, (x, y), (255, 255, 255), plan=plan, parts=parts)
        self.layout.banner_band = (0, box.rect[1] - 4, self.width - 1, min(self.height - 1, box.rect[3] + 4))
        self.layout.add(box)
        self.layout.take(self.layout.banner_band)
        self.bottom_limit = min(self.bottom_limit, self.layout.banner_band[1] - 4)

    def column(self) -> None:
        """Caption rows 1..K under the column glyph at one pitch, a price (decoy) row in up to two of
        its gaps. A row's join word says whether the rows right above and below it are prices: the
        image shows a black row there either way, so only the caption chain tells."""
        rng = self.rng
        rows = min(rng.choices(COLUMN_ROWS[0], weights=COLUMN_ROWS[1])[0], len(self.item.attributes))
        plans = [self._plan("column", rank=rank) for rank in range(1, rows + 1)]
        decoys = min(rng.choices(range(len(COLUMN_DECOYS)), weights=COLUMN_DECOYS)[0], len(plans) - 1)
        priced = set(rng.sample(range(1, len(plans)), decoys))  # gap g, after rank g, holds a price row
        kinds = ["caption"]
        for rank in range(2, len(plans) + 1):
            kinds += ["decoy", "caption"] if rank - 1 in priced else ["caption"]
        x_lo, x_hi = self.column_region
        widest_text = max((caption_text(self.lexicon, compose(self.lexicon, self.item, p)) for p in plans), key=len)
        font = fit_font(self.lang, (widest_text,), self.font, x_hi - x_lo - 2 * MARGIN - 4)
        line_h = text_extent(self.lang, widest_text, font)[1]
        gap = rng.randint(max(3, int(0.5 * line_h)), int(1.4 * line_h))
        glyph_side = max(12, int(0.9 * line_h))
        top = self.top_limit + glyph_side + 4
        while len(kinds) * (line_h + gap) - gap > self.bottom_limit - top:
            if gap > 3:
                gap -= 1
            elif "decoy" in kinds:
                del kinds[rng.choice([i for i, kind in enumerate(kinds) if kind == "decoy"])]
            elif len(plans) > 3:
                plans.pop()
                del kinds[len(kinds) - 1 - kinds[::-1].index("caption")]
            else:
                return
        pitch, n_rows = line_h + gap, len(kinds)
        y0 = rng.randint(top, max(top, self.bottom_limit - (n_rows * pitch - gap)))
        x0 = (
            x_lo
            + MARGIN
            + rng.randint(0, max(0, x_hi - x_lo - 2 * MARGIN - text_extent(self.lang, widest_text, font)[0]))
        )
        shape, rgb = glyph_drawing(self.item.glyph)
        glyph = (x0, y0 - glyph_side - 4, x0 + glyph_side, y0 - 4)
        self.layout.column_glyph = (COLUMN_GLYPHS[shape], glyph, rgb)
        self.layout.take(glyph)
        ink, queue = self._ink(), iter(plans)
        for row, kind in enumerate(kinds):
            top_left = (x0, y0 + row * pitch)
            extra = dict(row=row, rows=n_rows)
            if kind == "decoy":
                self.layout.add(text_box(self.lang, "decoy", self._decoy_text(), font, top_left, DECOY_RGB, **extra))
                continue
            above, below = row > 0 and kinds[row - 1] == "decoy", row + 1 < n_rows and kinds[row + 1] == "decoy"
            plan = replace(next(queue), price_above=above, price_below=below)
            made = self._caption(plan)
            if made is None:  # the same text as a caption already there: the column ends above it
                return
            text, parts = made
            self.layout.add(text_box(self.lang, "column", text, font, top_left, ink, plan=plan, parts=parts, **extra))
        # Nothing else goes beside the column: its caption chain runs row to row.
        right = max(r[2] for r in self.layout.occupied[-n_rows:])
        self.layout.column_area = (x0 - 2 * MARGIN, glyph[1], right + 3 * MARGIN, y0 + n_rows * pitch + pitch)
        self.layout.take(self.layout.column_area)

    def _decoy_text(self) -> str:
        rng = self.rng
        return rng.choice(self.lexicon.decoys).format(
            n=rng.randint(9, 499), d=rng.randint(5, 9), a=rng.choice((99, 199, 299)), b=rng.choice((10, 20, 50))
        )

    def product(self) -> None:
        rng, (x_lo, x_hi) = self.rng, self.product_region
        pw = int((x_hi - x_lo - 2 * MARGIN) * rng.uniform(0.55, 0.85))
        ph = min(int(0.42 * self.height), int(pw * rng.uniform(1.0, 1.4)))
        px = x_lo + MARGIN + rng.randint(0, x_hi - x_lo - 2 * MARGIN - pw)
        low = self.top_limit + 4
        ph = min(ph, self.bottom_limit - 30 - low)  # room for a colour call-out below
        py = rng.randint(low, max(low, self.bottom_limit - ph - 30))
        self.layout.product_rect = (px, py, px + pw, py + ph)
        self.layout.take(self.layout.product_rect)

    def colour(self) -> None:
        plan = self._plan("colour")
        made = self._caption(plan)
        if made is None:
            return
        text, parts = made
        x_lo, x_hi = self.product_region
        size = fit_font(self.lang, (text,), self.font, x_hi - x_lo - 2 * MARGIN)
        w, h, _, _ = text_extent(self.lang, text, size)
        px0, py0, px1, py1 = self.layout.product_rect
        cx = min(max(x_lo + MARGIN, (px0 + px1) // 2 - w // 2), x_hi - MARGIN - w)
        for top in (py1 + 5, py0 - h - 5):
            box = text_box(self.lang, "colour", text, size, (cx, top), self._ink(), plan=plan, parts=parts)
            if self.layout.is_free(box.rect) and self.top_limit <= box.rect[1] and box.rect[3] <= self.bottom_limit:
                self.layout.add(box)
                return

    def markers(self) -> None:
        for marker in self.item.markers:
            if self.rng.random() >= P_MARKER:
                continue
            plan = self._plan("marker", marker=marker)
            made = self._caption(plan)
            if made is None:
                continue
            text, parts = made
            side = int(self.font * 1.4)
            region = (self.product_region[0], self.top_limit, self.product_region[1], self.bottom_limit)
            args = dict(kind="marker", text=text, size=self.font, rgb=self._ink(), plan=plan, parts=parts)
            box = place_random(self.layout, self.lang, args, self.rng, region, extra_left=side + 4)
            if box is None:
                continue
            cy = (box.rect[1] + box.rect[3]) // 2
            glyph = (box.rect[0] - side - 4, cy - side // 2, box.rect[0] - 4, cy + side // 2)
            spec = self.lexicon.markers[marker]
            self.layout.markers.append((spec.glyph, glyph, spec.rgb))
            self.layout.add(box)
            self.layout.take(glyph)

    def anywhere(self, slot: str, **values) -> None:
        made = self._caption(plan := self._plan(slot, **values))
        if made is None:
            return
        text, parts = made
        args = dict(kind=slot, text=text, size=self.font, rgb=self._ink(), plan=plan, parts=parts)
        box = place_random(self.layout, self.lang, args, self.rng, (0, self.top_limit, self.width, self.bottom_limit))
        if box is not None:
            self.layout.add(box)

    def stray_prices(self) -> None:
        for _ in range(self.rng.choices(*STRAY_PRICES)[0]):
            args = dict(kind="price", text=self._decoy_text(), size=self.font, rgb=DECOY_RGB)
            box = place_random(self.layout, self.lang, args, self.rng, (0, 0, self.width, self.height), tries=20)
            if box is not None:
                self.layout.add(box)


def plan_layout(item: Item, lexicon: Lexicon, rng: random.Random) -> Layout:
    """Every box of the image (captions with their plans and parts, decoys, prices) and every drawing."""
    planner, draw = _Planner(item, lexicon, rng), rng.random
    if draw() < P_BRAND:
        planner.brand()
    if draw() < P_BANNER:
        planner.banner()
    if draw() < P_COLUMN:
        planner.column()
    planner.product()
    if draw() < P_COLOUR:
        planner.colour()
    planner.markers()
    if draw() < P_SPEC:
        planner.anywhere("spec")
    slogans = rng.sample(range(len(lexicon.slogans)), rng.choices(*SLOGANS)[0])
    for slogan in slogans:
        planner.anywhere("slogan", slogan=slogan)
    planner.stray_prices()
    return planner.layout


# -- drawing ----------------------------------------------------------------------------------------
def render(layout: Layout, item: Item, lexicon: Lexicon, scale: float = 1.0) -> Image.Image:
    """The image of a layout; ``scale`` > 1 draws the same layout larger (a crawl's original size), with
    the text in a proportionally larger font rather than upscaled pixels."""

    def scaled(rect: Rect) -> Rect:
        return tuple(round(v * scale) for v in rect)  # type: ignore[return-value]

    width, height = round(layout.size[0] * scale), round(layout.size[1] * scale)
    top, bottom = layout.background
    image = Image.new("RGB", (width, height), top)
    draw = ImageDraw.Draw(image)
    if bottom != top:  # a vertical gradient
        for y in range(height):
            t = y / (height - 1)
            draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    colour = lexicon.colours[item.colour][1]
    product = Image.new("RGB", image.size, (0, 0, 0))  # drawn apart first: its pixels are the finish's mask
    draw_product(ImageDraw.Draw(product), lexicon.category(item.category).shape, scaled(layout.product_rect), colour)
    mask = product.convert("L").point(lambda v: 255 if v else 0)
    image.paste(product, None, mask)
    draw_finish(image, FINISHES[item.finish], scaled(layout.product_rect), mask)
    for glyph, rect, rgb in layout.markers:
        draw_marker(draw, glyph, scaled(rect), rgb)
    if layout.column_glyph is not None:
        glyph, rect, rgb = layout.column_glyph
        draw_column_glyph(draw, glyph, scaled(rect), rgb)
    if layout.banner_band is not None:
        draw.rectangle(scaled(layout.banner_band), fill=tuple(int(c * 0.55) for c in colour))
    for box in layout.captions + layout.others:
        origin = (round(box.origin[0] * scale), round(box.origin[1] * scale))
        draw.text(origin, box.text, font=load_font(lexicon.lang, round(box.font_size * scale)), fill=box.rgb)
    return image
