"""The caption grammar of the factorised crawl: a caption is a concatenation of parts, and each part
is owned by exactly one input channel.

| slot      | length class 0 | 1                      | 2                             |
|-----------|----------------|------------------------|-------------------------------|
| brand     | brand          | brand + suffix1        | brand + suffix2               |
| column    | head_r + join  | head_r + tail + join   | mod + head_r + tail + join    |
| colour    | colour         | finish + colour        | finish + colour + noun        |
| marker    | phrase         | phrase + head_1        |                               |
| spec      | spec + "装"    |                        |                               |
| banner    | stem + theme   |                        |                               |
| slogan    | slogan         |                        |                               |

Owners: brand, head_r (the info's r-th attribute), tail and noun (the category), spec and stem (the
category's group) are INFO; mod (the column glyph), colour, finish and phrase (the marker glyph) are
IMAGE; the suffixes and the spec's "装" follow from the box's slot and length class, LOC; theme and
slogan are NOISE (uniform, never drawn, never written). A column row's place is CTX: the image shows
the column's price rows black like its captions, so only the chain of caption boxes tells the row's
rank r among the captions (which attribute its head copies) and whether the rows right above and
below it are prices (its join word).

Everything here is pure: sampling takes a ``random.Random``, composing takes plain values, so the
oracle (``components.evaluation.oracle``) composes the captions of guessed plans with the same code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from components.data.ingest.crawl import product_info
from components.data.synthetic.lexicon import GLYPH_COLOURS, Category, Lexicon

INFO, IMAGE, LOC, CTX, NOISE = "info", "image", "loc", "ctx", "noise"
CHANNELS = (INFO, IMAGE, LOC, CTX, NOISE)
SLOTS = ("brand", "column", "colour", "marker", "spec", "banner", "slogan")
LENGTH_CLASSES = {"brand": 3, "column": 3, "colour": 3, "marker": 2, "spec": 1, "banner": 1, "slogan": 1}
ZIPF_EXPONENT = 1.05
ZIPF_OFFSET = 8
INFO_CHARS = 60  # the crawl's info limit (product_info)
# Every item lists six attributes: a column shows three to six of them, and an info listing only as
# many as the column shows would tell the column's length (and so where its price rows are).
ATTRIBUTES = 6


@dataclass(frozen=True)
class Item:
    """One product: what its info says and what only its image shows. Colours, finishes, markers and
    the column glyph are indices into the lexicon's tables."""

    image_id: str
    category: str  # the noun
    brand: str
    name: str  # the product name (info only)
    fillers: tuple[str, ...]  # title words (info only)
    spec: str  # amount + unit
    attributes: tuple[str, ...]  # heads, in the info's order
    colour: int
    finish: int
    markers: tuple[int, ...]
    glyph: int  # the column glyph: its modifier
    theme: int  # the campaign theme (NOISE)

    def title(self, lexicon: Lexicon) -> str:
        return lexicon.joiner.join([self.brand, self.name + lexicon.joiner + self.category, *self.fillers, self.spec])

    def info(self, lexicon: Lexicon) -> str:
        return product_info(self.title(lexicon), self.crawl_attributes(lexicon))

    def crawl_attributes(self, lexicon: Lexicon) -> dict[str, list[str]]:
        """The attributes as a crawl lists them (the info is the title, then these values)."""
        return {"卖点" if lexicon.lang == "zh" else "features": list(self.attributes)}


@dataclass(frozen=True)
class BoxPlan:
    """What one caption box says, before the words: its slot, length class, rank in the column (1 up),
    which marker (its index in the lexicon) and which slogan."""

    slot: str
    length: int = 0
    rank: int = 0
    marker: int = -1
    slogan: int = -1
    price_above: bool = False  # a column row: the row right above it is a price (a decoy)
    price_below: bool = False  # ... and right below it

    @property
    def template(self) -> str:
        return f"{self.slot}/{self.length}"


@dataclass(frozen=True)
class Part:
    text: str
    channel: str
    role: str
    attribute: int = 0  # a head's 1-based place among the info's attributes (0: not a head)


# -- sampling -------------------------------------------------------------------------------------
def zipf_weights(n: int) -> list[float]:
    """Cumulative weights of a Zipf law over ``n`` ranks (for ``random.choices(cum_weights=...)``)."""
    total, out = 0.0, []
    for rank in range(n):
        total += 1.0 / (rank + ZIPF_OFFSET) ** ZIPF_EXPONENT
        out.append(total)
    return out


def sample_item(lexicon: Lexicon, rng: random.Random, image_id: str, name_weights: list[float]) -> Item:
    """A product. Its info holds every attribute whole (within the crawl's 60 characters, and none
    already inside the title, which the crawl's info would skip), and its title names nothing only
    the image may show (a drawn colour, finish, marker phrase or modifier): the name is re-drawn or
    shortened, and title words dropped, until both hold."""
    category = rng.choice(lexicon.categories)
    n_syllables = rng.choices((2, 3, 4, 5, 6), weights=(0.1, 0.2, 0.3, 0.25, 0.15))[0]
    fillers = rng.sample(lexicon.fillers, rng.choices((1, 2, 3), weights=(0.3, 0.45, 0.25))[0])
    item = Item(
        image_id=image_id,
        category=category.noun,
        brand=rng.choice(lexicon.brands),
        name="",
        fillers=(),
        spec=lexicon.joiner.join([rng.choice(category.numerals), category.unit]),
        attributes=(),
        colour=rng.randrange(len(lexicon.colours)),
        finish=rng.randrange(len(lexicon.finishes)),
        markers=tuple(rng.sample(range(len(lexicon.markers)), rng.choices((0, 1, 2), weights=(0.45, 0.4, 0.15))[0])),
        glyph=rng.randrange(len(lexicon.modifiers)),
        theme=rng.randrange(len(lexicon.themes)),
    )
    n_attributes = ATTRIBUTES
    while True:
        name = lexicon.joiner.join(rng.choices(lexicon.name_syllables, cum_weights=name_weights, k=n_syllables))
        if any(word in f" {name} " for word in drawn_words(lexicon)):
            continue  # the lexicon's own title words name nothing drawn (tested)
        item = replace(item, name=name.capitalize() if lexicon.lang == "en" else name, fillers=tuple(fillers))
        title = item.title(lexicon)
        heads = [h for h in category.heads if h not in title]
        item = replace(item, attributes=tuple(rng.sample(heads, n_attributes)))
        if len(product_info(title, item.crawl_attributes(lexicon), limit=10**6)) <= INFO_CHARS:
            return item
        if fillers:
            fillers.pop()
        elif n_syllables > 1:
            n_syllables -= 1
        else:
            n_attributes -= 1


def drawn_words(lexicon: Lexicon) -> tuple[str, ...]:
    """What only the image shows, in words: colours, finishes, marker phrases, column modifiers."""
    words = [c for c, _ in lexicon.colours] + list(lexicon.finishes) + [m.phrase for m in lexicon.markers]
    words += list(lexicon.modifiers)
    if lexicon.lang == "en":  # whole words only
        return tuple(f" {w} " for w in words)
    return tuple(words)


def glyph_drawing(glyph: int) -> tuple[int, tuple[int, int, int]]:
    """(shape index, colour) of column glyph ``glyph``: 8 shapes x 5 colours, one modifier each."""
    return glyph // len(GLYPH_COLOURS), GLYPH_COLOURS[glyph % len(GLYPH_COLOURS)]


# -- composing ------------------------------------------------------------------------------------
def compose(lexicon: Lexicon, item: Item, plan: BoxPlan) -> tuple[Part, ...]:
    """The parts of the caption of ``plan`` on ``item``'s image."""
    category: Category = lexicon.category(item.category)
    length = plan.length
    if plan.slot == "brand":
        suffix = (Part(lexicon.brand_suffixes[length - 1], LOC, "suffix"),) if length else ()
        return (Part(item.brand, INFO, "brand"), *suffix)
    if plan.slot == "column":
        rank = min(max(plan.rank, 1), len(item.attributes))
        head = Part(item.attributes[rank - 1], INFO, "head", rank)
        mod = (Part(lexicon.modifier(item.glyph), IMAGE, "mod"),) if length == 2 else ()
        tail = (Part(category.tail, INFO, "tail"),) if length >= 1 else ()
        join = Part(lexicon.joins[2 * plan.price_above + plan.price_below], CTX, "join")
        return (*mod, head, *tail, join)
    if plan.slot == "colour":
        colour = Part(lexicon.colours[item.colour][0], IMAGE, "colour")
        finish = (Part(lexicon.finishes[item.finish], IMAGE, "finish"),) if length >= 1 else ()
        noun = (Part(category.noun, INFO, "noun"),) if length == 2 else ()
        return (*finish, colour, *noun)
    if plan.slot == "marker":
        phrase = Part(lexicon.markers[plan.marker].phrase, IMAGE, "phrase")
        return (phrase, Part(item.attributes[0], INFO, "head", 1)) if length else (phrase,)
    if plan.slot == "spec":
        return (Part(item.spec, INFO, "spec"), Part(lexicon.spec_suffix, LOC, "suffix"))
    if plan.slot == "banner":
        return (Part(lexicon.stems[category.group], INFO, "stem"), Part(lexicon.themes[item.theme], NOISE, "theme"))
    if plan.slot == "slogan":
        return (Part(lexicon.slogans[plan.slogan], NOISE, "slogan"),)
    raise ValueError(f"unknown slot '{plan.slot}'")


def caption_text(lexicon: Lexicon, parts: tuple[Part, ...]) -> str:
    return lexicon.joiner.join(p.text for p in parts)


# -- labelled OCR-like noise ----------------------------------------------------------------------
# Per caption, at most one kind drawn at these rates; a kind that cannot apply leaves the caption
# clean (a look-alike needs a character that has one, a merged text must still fit on the image),
# so fewer captions carry it: in the crawl form about 2.1% look-alike, 2.5% clipped, 1.5% dropped,
# 1.9% merged; in a release's training captions about 0.5% look-alike and 0.9% dropped, what the
# pipeline's rules let through (clipped and merged captions are caught by the length rule and the
# fluency filter, see components/data/synthetic/checks.py). Val and test are clean, like the paper's
# hand-checked splits.
CRAWL_NOISE = {"lookalike": 0.08, "truncated": 0.03, "dropped": 0.02, "merged": 0.1}
RELEASE_NOISE = {"lookalike": 0.02, "dropped": 0.01}


def noise_kind(rng: random.Random, rates: dict[str, float]) -> str | None:
    draw, edge = rng.random(), 0.0
    for kind, rate in rates.items():
        edge += rate
        if draw < edge:
            return kind
    return None


def apply_noise(kind: str | None, text: str, neighbour: str | None, lexicon: Lexicon, rng: random.Random) -> str:
    """``text`` as an OCR engine could misread it: a look-alike character, the end cut off, a
    character dropped, or the chain neighbour's text run into it. Unchanged when the kind cannot
    apply (no look-alike character, too short, no neighbour)."""
    units = text.split(" ") if lexicon.joiner else list(text)
    if kind == "lookalike":
        swappable = [i for i, u in enumerate(units) if any(c in lexicon.lookalikes for c in u)]
        if not swappable:
            return text
        i = rng.choice(swappable)
        chars = list(units[i])
        j = rng.choice([k for k, c in enumerate(chars) if c in lexicon.lookalikes])
        chars[j] = lexicon.lookalikes[chars[j]]
        units[i] = "".join(chars)
    elif kind == "truncated" and len(units) >= 3:
        units = units[:-1]  # the last character clipped at the box's edge
    elif kind == "dropped" and len(units) >= 3:
        del units[rng.randrange(1, len(units) - 1)]
    elif kind == "merged" and neighbour:
        return text + lexicon.joiner + neighbour
    return lexicon.joiner.join(units)
