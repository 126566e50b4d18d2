"""One synthetic product image: its item, its layout, its release-format record and its truth.

Generation is deterministic for a seed whatever the number of worker processes: image ``i`` draws
from its own random stream seeded by ``(seed, i, attempt)`` (``attempt`` > 0 re-plans an image the
near-duplicate rule rejected), and its OCR-like noise from a stream of its own, so the release and
the crawl form of a product have the same layout.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, replace

from PIL import Image

from components.data.record.boxes import Box
from components.data.release.format import ImageRecord
from components.data.synthetic.grammar import (
    CRAWL_NOISE,
    RELEASE_NOISE,
    Item,
    apply_noise,
    noise_kind,
    sample_item,
    zipf_weights,
)
from components.data.synthetic.layout import Layout, TextBox, plan_layout, render, text_box
from components.data.synthetic.lexicon import Lexicon
from components.data.synthetic.truth import BoxTruth, ImageTruth
from components.data.transforms.neighbours import chain_order

MIN_CAPTIONS = 2  # like the real pipeline, an image needs at least 2 captions


@dataclass(frozen=True)
class Generated:
    item: Item
    record: ImageRecord  # what the release (or the crawled image, for the crawl form) holds
    truth: ImageTruth
    image: Image.Image


def image_rng(seed: int, index: int, attempt: int = 0) -> random.Random:
    """The random stream of image ``index``: independent of which worker renders it."""
    return random.Random(seed * 1_000_003 + index if attempt == 0 else f"{seed}:{index}:{attempt}")


def noise_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"noise:{seed}:{index}")


@functools.cache
def _name_weights(syllables: int) -> list[float]:
    return zipf_weights(syllables)


def plan_image(lexicon: Lexicon, seed: int, index: int, image_id: str, attempt: int = 0) -> tuple[Item, Layout]:
    """The item and layout of image ``index`` of the crawl with this seed."""
    rng = image_rng(seed, index, attempt)
    item = sample_item(lexicon, rng, image_id, _name_weights(len(lexicon.name_syllables)))
    layout = plan_layout(item, lexicon, rng)
    while len(layout.captions) < MIN_CAPTIONS:  # re-plan the image (same product) until it has enough
        layout = plan_layout(item, lexicon, rng)
    return item, layout


def fraction_box(rect, size: tuple[int, int]) -> Box:
    """An inclusive pixel rect as fractions, rounded to 4 decimals (exact back to pixels at this size)."""
    width, height = size
    x0, y0, x1, y1 = rect
    return Box(
        round(max(0, x0) / width, 4),
        round(max(0, y0) / height, 4),
        round(min(width - 1, x1) / width, 4),
        round(min(height - 1, y1) / height, 4),
    )


def chained(layout: Layout) -> list[TextBox]:
    """The caption boxes in neighbour-chain order from the top-most box (reading order, as OCR emits)."""
    boxes = sorted(layout.captions, key=lambda b: (b.rect[1], b.rect[0]))
    order = chain_order([fraction_box(b.rect, layout.size) for b in boxes])
    return [boxes[i] for i in order]


def noisy_texts(
    boxes: list[TextBox], lexicon: Lexicon, rng: random.Random, rates: dict[str, float]
) -> list[tuple[str, str | None]]:
    """(text, noise kind or None) per box in chain order; a merged text runs the next box's into it."""
    out = []
    for i, box in enumerate(boxes):
        kind = noise_kind(rng, rates)
        following = boxes[i + 1].text if i + 1 < len(boxes) else None
        text = apply_noise(kind, box.text, following, lexicon, rng)
        out.append((text, kind if text != box.text else None))
    return out


def with_crawl_noise(layout: Layout, lexicon: Lexicon, rng: random.Random) -> tuple[Layout, dict[int, str]]:
    """The layout with labelled noise drawn into its caption texts (a crawl's OCR would read them so):
    (the new layout, noise kind by caption position in ``layout.captions``). A text that no longer
    fits its place is left clean."""
    boxes = chained(layout)
    position = {id(b): i for i, b in enumerate(layout.captions)}
    captions, kinds = list(layout.captions), {}
    occupied = [r for r in layout.occupied if r not in {b.rect for b in layout.captions} | {layout.column_area}]
    for box, (text, kind) in zip(boxes, noisy_texts(boxes, lexicon, rng, CRAWL_NOISE), strict=True):
        if kind is None:
            continue
        moved = text_box(lexicon.lang, box.kind, text, box.font_size, box.rect[:2], box.rgb,
                         plan=box.plan, parts=box.parts, row=box.row, rows=box.rows)  # fmt: skip
        others = [b.rect for b in captions if b is not box and b.rect != box.rect] + occupied
        trial = Layout(layout.size, layout.background, occupied=others)
        if trial.is_free(moved.rect, gap=1):
            captions[position[id(box)]] = moved
            kinds[position[id(box)]] = kind
    return replace(layout, captions=captions), kinds


def make_record(
    item: Item, layout: Layout, lexicon: Lexicon, noise: random.Random | None, crawl_noise: dict[int, str] | None = None
) -> tuple[ImageRecord, ImageTruth]:
    """The release-format record (caption boxes in neighbour-chain order) and the image's truth.
    With ``noise`` the record's captions carry labelled OCR-like noise (training captions);
    ``crawl_noise`` labels texts already drawn noisy (the crawl form)."""
    boxes = chained(layout)
    if noise is not None:
        shown = noisy_texts(boxes, lexicon, noise, RELEASE_NOISE)
    else:
        kinds = {id(b): k for i, b in enumerate(layout.captions) if (k := (crawl_noise or {}).get(i))}
        shown = [(b.text, kinds.get(id(b))) for b in boxes]
    truths = []
    for box, (text, kind) in zip(boxes, shown, strict=True):
        clean = lexicon.joiner.join(p.text for p in box.parts)
        truths.append(BoxTruth(box.plan, box.parts, clean, text, kind, box.row, box.rows))
    everything = sorted(layout.captions + layout.others, key=lambda b: (b.rect[1], b.rect[0]))
    record = ImageRecord(
        image_id=item.image_id,
        info=item.info(lexicon),
        all_boxes=tuple(fraction_box(b.rect, layout.size) for b in everything),
        caption_boxes=tuple(fraction_box(b.rect, layout.size) for b in boxes),
        captions=tuple(text for text, _ in shown),
        colors=tuple(b.rgb for b in boxes),
    )
    return record, ImageTruth(item.image_id, item, tuple(truths), layout.column_glyph is not None)


def generate_image(
    lexicon: Lexicon,
    seed: int,
    index: int,
    image_id: str,
    noisy: bool,
    scale: float = 1.0,
    crawl: bool = False,
    attempt: int = 0,
    draw: bool = True,
) -> Generated:
    """Image ``index`` of the crawl with this seed. ``noisy``: training captions with labelled noise in
    the record. ``crawl``: the crawl form, noise drawn into the image's texts, ``scale`` times larger
    (the record's boxes are fractions, so they hold at any scale). ``draw=False`` skips the pixels."""
    item, layout = plan_image(lexicon, seed, index, image_id, attempt)
    crawl_noise = None
    if crawl:
        layout, crawl_noise = with_crawl_noise(layout, lexicon, noise_rng(seed, index))
    record, truth = make_record(
        item, layout, lexicon, noise_rng(seed, index) if noisy and not crawl else None, crawl_noise
    )
    image = render(layout, item, lexicon, scale) if draw else None
    return Generated(item, record, truth, image)
