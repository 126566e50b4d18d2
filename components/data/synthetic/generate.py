"""The synthetic crawl: product images in the CapOnImage2M release format (see shared SYNTHETIC.md).

Each caption depends on a known set of inputs, so each ablation of the model has something to lose:

| slot            | caption                                  | needs                               |
|-----------------|------------------------------------------|-------------------------------------|
| brand           | the brand name (top band)                | info + location                     |
| feature column  | feature i of the info, in order downward | info + location + neighbours        |
| colour call-out | the drawn product colour                 | image + location                    |
| marker call-out | the phrase of the drawn marker glyph     | image                               |
| banner          | a selling point of the category's group  | location + info (category)          |

Generation is deterministic for a seed whatever the number of worker processes: image ``i`` draws
from its own random stream seeded by ``(seed, i)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from components.data.boxes import Box
from components.data.fonts import load_font
from components.data.neighbours import chain_order
from components.data.release import ImageRecord
from components.data.synthetic.lexicon import Category, Lexicon, Marker
from components.data.synthetic.shapes import Rect, draw_marker, draw_product

# (width, height) with short side 256, and how often each occurs.
IMAGE_SIZES = ((256, 256), (256, 341), (341, 256))
IMAGE_SIZE_WEIGHTS = (0.5, 0.35, 0.15)
MARGIN = 6
PAD = 2  # a text box is the text's ink box plus this many pixels each side
TEXT_COLOURS = ((20, 20, 20), (60, 30, 20), (20, 40, 90), (120, 20, 30), (30, 80, 40), (80, 30, 100))
NOISE_RATE = 0.04
MIN_CAPTIONS = 2  # share of look-alike characters swapped in training captions (OCR noise)


@dataclass(frozen=True)
class Item:
    """One product: what its info says plus what only its image shows (colour, markers)."""

    image_id: str
    category: Category
    brand: str
    features: tuple[str, ...]
    colour: tuple[str, tuple[int, int, int]]
    markers: tuple[Marker, ...]
    title: str
    banner: str

    @property
    def info(self) -> str:
        return " ".join([self.title, *self.features])

    @property
    def attributes(self) -> dict[str, object]:
        return {"brand": self.brand, "category": self.category.name, "features": list(self.features)}


@dataclass
class Slot:
    """A text drawn on the image: a caption (``kind`` names its slot) or a distractor."""

    kind: str
    text: str
    rect: Rect  # inclusive pixel box
    font_size: int
    rgb: tuple[int, int, int]
    origin: tuple[int, int]  # where the text is drawn


@dataclass
class Layout:
    size: tuple[int, int]
    background: tuple[tuple[int, int, int], tuple[int, int, int]]
    product_rect: Rect
    captions: list[Slot] = field(default_factory=list)
    distractors: list[Slot] = field(default_factory=list)
    glyphs: list[tuple[str, Rect, tuple[int, int, int]]] = field(default_factory=list)
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


# -- the product -----------------------------------------------------------------------------------
def sample_item(lexicon: Lexicon, rng: random.Random, image_id: str) -> Item:
    category = rng.choice(lexicon.categories)
    n_features = rng.randint(2, 4)
    features = tuple(rng.sample(category.features, n_features))
    brand = rng.choice(lexicon.brands)
    fillers = rng.sample(lexicon.title_fillers, rng.randint(2, 3))
    title = lexicon.joiner.join([brand, category.name, *fillers])
    n_markers = rng.choices((0, 1, 2), weights=(0.4, 0.4, 0.2))[0]
    return Item(
        image_id=image_id,
        category=category,
        brand=brand,
        features=features,
        colour=rng.choice(lexicon.colours),
        markers=tuple(rng.sample(lexicon.markers, n_markers)),
        title=title,
        banner=rng.choice(lexicon.banners[category.group]),
    )


# -- layout ----------------------------------------------------------------------------------------
def _text_rect(lang: str, text: str, size: int, origin: tuple[int, int]) -> Rect:
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = draw.textbbox(origin, text, font=load_font(lang, size))
    return (int(left) - PAD, int(top) - PAD, int(right) + PAD - 1, int(bottom) + PAD - 1)


def _text_extent(lang: str, text: str, size: int) -> tuple[int, int, int, int]:
    """(width, height, dx, dy): the ink box size and its offset from the drawing origin."""
    x0, y0, x1, y1 = _text_rect(lang, text, size, (0, 0))
    return x1 - x0 + 1, y1 - y0 + 1, x0, y0


def _slot_at(lang: str, kind: str, text: str, size: int, top_left: tuple[int, int], rgb) -> Slot:
    """A slot whose box has its top-left corner at ``top_left``."""
    _, _, dx, dy = _text_extent(lang, text, size)
    origin = (top_left[0] - dx, top_left[1] - dy)
    return Slot(kind, text, _text_rect(lang, text, size, origin), size, rgb, origin)


def _place_random(
    layout: Layout,
    lang: str,
    kind: str,
    text: str,
    size: int,
    rgb,
    rng: random.Random,
    y_range: tuple[float, float],
    tries: int = 40,
    extra_left: int = 0,
    x_range: tuple[int, int] | None = None,
) -> Slot | None:
    """Put a text somewhere free inside a band of heights (fractions of H) and of x pixels; None when nothing fits.

    ``extra_left`` keeps that many pixels free left of the text (for a marker glyph).
    """
    width, height = layout.size
    x_lo, x_hi = x_range or (0, width)
    w, h, _, _ = _text_extent(lang, text, size)
    for _ in range(tries):
        x = rng.randint(x_lo + MARGIN + extra_left, max(x_lo + MARGIN + extra_left, x_hi - MARGIN - w))
        y = rng.randint(int(y_range[0] * height), max(int(y_range[0] * height), int(y_range[1] * height) - h))
        slot = _slot_at(lang, kind, text, size, (x, y), rgb)
        glyph = (slot.rect[0] - extra_left, slot.rect[1], slot.rect[0] - 4, slot.rect[3]) if extra_left else None
        if layout.is_free(slot.rect) and (glyph is None or layout.is_free(glyph)):
            return slot
    return None


def _fit_font(lang: str, texts: tuple[str, ...], size: int, max_width: int) -> int:
    while size > 10 and max(_text_extent(lang, t, size)[0] for t in texts) > max_width:
        size -= 1
    return size


def plan_layout(item: Item, lexicon: Lexicon, rng: random.Random) -> Layout:
    lang = lexicon.lang
    width, height = rng.choices(IMAGE_SIZES, weights=IMAGE_SIZE_WEIGHTS)[0]
    light = lambda: tuple(rng.randint(215, 255) for _ in range(3))  # noqa: E731
    top_colour = light()
    layout = Layout((width, height), (top_colour, light() if rng.random() < 0.5 else top_colour), (0, 0, 0, 0))
    half = width // 2
    product_left = rng.random() < 0.5
    product_half = (0, half) if product_left else (half, width)
    column_x0 = half + MARGIN if product_left else MARGIN
    font = _fit_font(lang, item.features, rng.randint(14, 22), half - 2 * MARGIN - 4)
    ink = lambda: rng.choice(TEXT_COLOURS)  # noqa: E731

    # Brand: a short wide box in the top band, in a bigger font.
    if rng.random() < 0.85:
        size = _fit_font(lang, (item.brand,), font + rng.randint(2, 8), width - 2 * MARGIN)
        w, _, _, _ = _text_extent(lang, item.brand, size)
        slot = _slot_at(
            lang,
            "brand",
            item.brand,
            size,
            (rng.randint(MARGIN, width - MARGIN - w), rng.randint(MARGIN, int(0.07 * height))),
            ink(),
        )
        layout.captions.append(slot)
        layout.take(slot.rect)

    # Banner: a wide box on a coloured strip at the bottom.
    if rng.random() < 0.45:
        size = _fit_font(lang, (item.banner,), font + rng.randint(0, 3), width - 4 * MARGIN)
        w, h, _, _ = _text_extent(lang, item.banner, size)
        y_bottom = height - MARGIN - h - 2
        y = rng.randint(min(int(0.87 * height), y_bottom), y_bottom)
        slot = _slot_at(
            lang, "banner", item.banner, size, (rng.randint(2 * MARGIN, width - 2 * MARGIN - w), y), (255, 255, 255)
        )
        layout.banner_band = (0, slot.rect[1] - 4, width - 1, min(height - 1, slot.rect[3] + 4))
        layout.captions.append(slot)
        layout.take(layout.banner_band)

    # Feature column: beside the product, start and spacing vary per image.
    _, line_h, _, _ = _text_extent(lang, item.features[0], font)
    gap = int(line_h * rng.uniform(0.5, 1.4))
    column_h = len(item.features) * line_h + (len(item.features) - 1) * gap
    y_low, y_high = int(0.17 * height), int(0.84 * height) - column_h
    while y_high < y_low and gap > 2:
        gap -= 2
        column_h = len(item.features) * line_h + (len(item.features) - 1) * gap
        y_high = int(0.84 * height) - column_h
    widest = max(_text_extent(lang, t, font)[0] for t in item.features)
    x = column_x0 + rng.randint(0, max(0, half - 2 * MARGIN - widest))
    y = rng.randint(y_low, max(y_low, y_high))
    for text in item.features:
        slot = _slot_at(lang, "feature", text, font, (x, y), ink())
        if not layout.is_free(slot.rect):  # the column ends here; a gap in it would break the order
            break
        layout.captions.append(slot)
        layout.take(slot.rect)
        y = slot.rect[3] + 1 + gap

    # Product: a category shape in its colour, in the other half.
    product_x0 = MARGIN if product_left else half + MARGIN
    pw = int((half - 2 * MARGIN) * rng.uniform(0.6, 0.9))
    ph = min(int(0.42 * height), int(pw * rng.uniform(1.0, 1.4)))
    px = product_x0 + rng.randint(0, half - 2 * MARGIN - pw)
    py = rng.randint(int(0.2 * height), max(int(0.2 * height), int(0.74 * height) - ph))
    layout.product_rect = (px, py, px + pw, py + ph)
    layout.take(layout.product_rect)

    # Colour call-out: just below the product, else just above it.
    if rng.random() < 0.55:
        text = item.colour[0]
        size = _fit_font(lang, (text,), font, half - 2 * MARGIN)
        w, h, _, _ = _text_extent(lang, text, size)
        cx = min(max(MARGIN, (px + px + pw) // 2 - w // 2), width - MARGIN - w)
        for top in (py + ph + 5, py - h - 5):
            slot = _slot_at(lang, "colour", text, size, (cx, top), ink())
            if layout.is_free(slot.rect):
                layout.captions.append(slot)
                layout.take(slot.rect)
                break

    # Marker call-outs: a glyph with its phrase right beside it, wherever there is room.
    for marker in item.markers:
        if any(s.text == marker.phrase for s in layout.captions):
            continue
        glyph_side = int(font * 1.5)
        slot = _place_random(
            layout,
            lang,
            "marker",
            marker.phrase,
            font,
            ink(),
            rng,
            (0.12, 0.86),
            extra_left=glyph_side + 4,
            x_range=product_half,
        )
        if slot is None:
            continue
        cy = (slot.rect[1] + slot.rect[3]) // 2
        glyph = (slot.rect[0] - glyph_side - 4, cy - glyph_side // 2, slot.rect[0] - 4, cy + glyph_side // 2)
        layout.glyphs.append((marker.glyph, glyph, marker.rgb))
        layout.captions.append(slot)
        layout.take(slot.rect)
        layout.take(glyph)

    # Distractors: prices and discounts; masked (in all_locs) but never captions.
    for _ in range(rng.choices((0, 1, 2), weights=(0.4, 0.4, 0.2))[0]):
        text = rng.choice(lexicon.distractors).format(
            n=rng.randint(9, 499), d=rng.randint(5, 9), a=rng.choice((99, 199, 299)), b=rng.choice((10, 20, 50))
        )
        slot = _place_random(layout, lang, "distractor", text, font, (220, 30, 30), rng, (0.1, 0.95), tries=20)
        if slot is not None:
            layout.distractors.append(slot)
            layout.take(slot.rect)
    return layout


# -- rendering -------------------------------------------------------------------------------------
def render(layout: Layout, item: Item, lang: str, scale: float = 1.0) -> Image.Image:
    """The image of a layout; ``scale`` > 1 draws the same layout larger (a crawl's original size), with
    the text in a proportionally larger font rather than upscaled pixels."""

    def scaled(rect: Rect) -> Rect:
        return tuple(round(v * scale) for v in rect)

    width, height = round(layout.size[0] * scale), round(layout.size[1] * scale)
    top, bottom = layout.background
    image = Image.new("RGB", (width, height), top)
    draw = ImageDraw.Draw(image)
    if bottom != top:  # a vertical gradient
        for y in range(height):
            t = y / (height - 1)
            draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    draw_product(draw, item.category.shape, scaled(layout.product_rect), item.colour[1])
    for glyph, rect, rgb in layout.glyphs:
        draw_marker(draw, glyph, scaled(rect), rgb)
    if layout.banner_band is not None:
        draw.rectangle(scaled(layout.banner_band), fill=tuple(int(c * 0.55) for c in item.colour[1]))
    for slot in layout.captions + layout.distractors:
        origin = (round(slot.origin[0] * scale), round(slot.origin[1] * scale))
        draw.text(origin, slot.text, font=load_font(lang, round(slot.font_size * scale)), fill=slot.rgb)
    return image


# -- records ---------------------------------------------------------------------------------------
def fraction_box(rect: Rect, size: tuple[int, int]) -> Box:
    """An inclusive pixel rect as fractions, rounded to 4 decimals (exact back to pixels at this size)."""
    width, height = size
    x0, y0, x1, y1 = rect
    return Box(
        round(max(0, x0) / width, 4),
        round(max(0, y0) / height, 4),
        round(min(width - 1, x1) / width, 4),
        round(min(height - 1, y1) / height, 4),
    )


def ocr_noise(text: str, lexicon: Lexicon, rng: random.Random, rate: float = NOISE_RATE) -> str:
    """Swap a small share of characters for look-alikes, as an OCR model would misread them."""
    return "".join(lexicon.lookalikes[c] if c in lexicon.lookalikes and rng.random() < rate else c for c in text)


def make_record(item: Item, layout: Layout, lexicon: Lexicon, rng: random.Random, noisy: bool) -> ImageRecord:
    """The release-format record: caption boxes in neighbour-chain order from the top-most box."""
    slots = sorted(layout.captions, key=lambda s: (s.rect[1], s.rect[0]))  # reading order, as OCR emits
    boxes = [fraction_box(s.rect, layout.size) for s in slots]
    order = chain_order(boxes)
    slots = [slots[i] for i in order]
    captions = tuple(ocr_noise(s.text, lexicon, rng) if noisy else s.text for s in slots)
    all_slots = sorted(layout.captions + layout.distractors, key=lambda s: (s.rect[1], s.rect[0]))
    return ImageRecord(
        image_id=item.image_id,
        info=item.info,
        all_boxes=tuple(fraction_box(s.rect, layout.size) for s in all_slots),
        caption_boxes=tuple(boxes[i] for i in order),
        captions=captions,
        colors=tuple(s.rgb for s in slots),
    )


def image_rng(seed: int, index: int) -> random.Random:
    """The random stream of image ``index``: independent of which worker renders it."""
    return random.Random(seed * 1_000_003 + index)


def plan_image(lexicon: Lexicon, seed: int, index: int, image_id: str) -> tuple[Item, Layout, random.Random]:
    """(item, layout, the image's random stream after planning) for image ``index`` of a crawl."""
    rng = image_rng(seed, index)
    item = sample_item(lexicon, rng, image_id)
    # Like the real pipeline, an image needs at least 2 captions; re-plan the rare one that has fewer.
    layout = plan_layout(item, lexicon, rng)
    while len(layout.captions) < MIN_CAPTIONS:
        layout = plan_layout(item, lexicon, rng)
    return item, layout, rng


def generate_image(lexicon: Lexicon, seed: int, index: int, image_id: str, noisy: bool, scale: float = 1.0):
    """(item, record, image) for image ``index`` of the crawl with this seed; ``scale`` renders the
    same layout larger (the record's boxes are fractions, so they hold at any scale)."""
    item, layout, rng = plan_image(lexicon, seed, index, image_id)
    image = render(layout, item, lexicon.lang, scale)
    return item, make_record(item, layout, lexicon, rng, noisy), image
