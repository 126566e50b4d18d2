"""The benchmark's ceilings: an oracle that knows the synthetic generator and is denied inputs.

For each variant of the paper's ablations (Table 2's inputs, Table A5's neighbours) the oracle reads
the sidecar (``components.data.synthetic.truth``), is denied what that variant's model is denied,
and writes every box's caption with the generator's own grammar: a part whose owner it sees is
right; a denied part is the most likely training value given what it still sees. Scored with the
project's scorer, these are the ceilings of the variants: what each input carries, before any
training.

What each input lets the oracle see:
- LOC: the box's slot and length class (so its template); without it every box of an image looks
  alike and gets one caption (the most common slot's, given whether the image shows a column).
- INFO: the brand, the attributes, the spec, the category (noun, tail, group); without it the
  category is the one most common for the drawn shape, the brand the most common brand, the head of
  rank r the most common r-th attribute for that shape.
- IMAGE: the colour, finish, marker glyph beside a box and the column glyph (its modifier); and the
  column's rows, decoys included: the row index and row count of a column box.
- neighbours (CTX): the chain's neighbour boxes; those in the box's column are caption rows, and the
  rows between two that follow each other in the chain are prices. A column row's rank and whether
  the rows next to it are prices are inferred exactly under the generator's column law from the
  image's rows and what the neighbours say (``components.data.synthetic.columns``); without the
  image, they are the most common training values for the box's own height.
- NOISE (the banner's theme, a slogan) is never seen: always the most common value.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from components.data.record.boxes import Box, grid_index
from components.data.record.rejection import RecordRejected
from components.data.release.format import ImageRecord, parse_record_value
from components.data.release.table import DatasetTable, head_rows
from components.data.synthetic.columns import row_posterior
from components.data.synthetic.grammar import CTX, IMAGE, INFO, LOC, BoxPlan, Item, caption_text, compose
from components.data.synthetic.lexicon import LEXICONS, Lexicon
from components.data.synthetic.truth import ImageTruth, read_truth
from components.data.transforms.neighbours import NO_NEIGHBOUR, neighbours
from components.evaluation.fields import BoxFields, FieldSheet, field_accuracy
from components.evaluation.scores import caption_scores

LOCATION_GRID = 8  # the paper's grid: what a box's own place tells, without the image
MIN_SUPPORT = 3  # training examples a conditional guess needs; else it backs off
RANDOM_DRAWS = 5  # draws of random neighbours a ceiling is the mean of


@dataclass(frozen=True)
class OracleVariant:
    name: str
    denied: frozenset[str]  # of INFO, IMAGE, LOC
    neighbours: str  # none, random2, top1, top2 (CTX is denied with "none")
    paper: str  # the row it stands for


VARIANTS = (
    OracleVariant("no-locations", frozenset({LOC}), "none", "Table 2 w/o locations"),
    OracleVariant("no-info", frozenset({INFO}), "none", "Table 2 no-info"),
    OracleVariant("no-image", frozenset({IMAGE}), "none", "Table 2 no-image"),
    OracleVariant("baseline", frozenset(), "none", "Table 2 baseline; Table A5 no context"),
    OracleVariant("random2", frozenset(), "random2", "Table A5 two random boxes"),
    OracleVariant("full", frozenset(), "top1", "Table 2 context and full; Table A5 top-1"),
    OracleVariant("top2", frozenset(), "top2", "Table A5 top-2"),
)
BY_NAME = {v.name: v for v in VARIANTS}
# The oracle denied one input, for that input's diagnostic boxes V_X (CTX: no neighbours).
DENYING = {INFO: "no-info", IMAGE: "no-image", LOC: "no-locations", CTX: "baseline"}


@dataclass(frozen=True)
class Example:
    """One image as the oracle reads it: its truth and its caption boxes (the record's ``ocr_locs``)."""

    truth: ImageTruth
    boxes: tuple[Box, ...]

    def key(self, b: int) -> str:
        return f"{self.truth.image_id}#{b}"


def _random2(example: Example, draw: int) -> list[tuple[int, ...]]:
    return neighbours(list(example.boxes), "random2", random.Random(f"{example.truth.image_id}:{draw}"))


def neighbour_rows(
    example: Example, b: int, variant: OracleVariant, chain: list[tuple[int, ...]] | None
) -> tuple[frozenset[int], frozenset[int]]:
    """What a column box's neighbours tell of its column's rows: (rows that are captions, rows that
    are prices). Every neighbour in the box's column is a caption row; walking out along the chain
    (top-1, top-2), the rows between two caption boxes that follow each other in the chain hold no
    caption, so they are prices. Random neighbours say nothing of the rows between."""
    if chain is None:
        return frozenset(), frozenset()
    boxes, box = example.truth.boxes, example.truth.boxes[b]

    def column_row(n: int) -> int | None:
        other = boxes[n] if n != NO_NEIGHBOUR else None
        return other.row if other is not None and other.slot == "column" and other.rows == box.rows else None

    captions, prices = set(), set()
    if variant.neighbours == "random2":
        captions = {r for n in chain[b] if (r := column_row(n)) is not None}
        return frozenset(captions), frozenset()
    reach = len(chain[b]) // 2
    for side in (chain[b][:reach], chain[b][reach:]):  # previous ones outwards, then next ones outwards
        here = box.row
        for n in side:
            there = column_row(n)
            if there is None:
                break
            captions.add(there)
            prices |= set(range(min(here, there) + 1, max(here, there)))
            here = there
    return frozenset(captions), frozenset(prices - captions)


def _chains(example: Example, variant: OracleVariant, draw: int = 0) -> list[tuple[int, ...]] | None:
    """Every box's neighbours as the variant sees them (``draw``: which draw of random neighbours)."""
    if variant.neighbours == "none":
        return None
    if variant.neighbours == "random2":
        return _random2(example, draw)
    return neighbours(list(example.boxes), variant.neighbours)


def draws(variant: OracleVariant) -> range:
    """Random neighbours are scored as the mean over several draws: one draw's luck is not the input's."""
    return range(RANDOM_DRAWS if variant.neighbours == "random2" else 1)


class _Counts:
    """Counts of values under keys, and the most likely value under a key."""

    def __init__(self) -> None:
        self.counts: dict[Hashable, Counter] = defaultdict(Counter)

    def add(self, keys: Sequence[Hashable], value) -> None:
        for key in keys:
            self.counts[key][value] += 1

    def mode(self, keys: Sequence[Hashable], default=None):
        """The most common value under the first key with ``MIN_SUPPORT`` examples."""
        for key in keys:
            counter = self.counts.get(key)
            if counter and sum(counter.values()) >= MIN_SUPPORT:
                return _argmax(counter)
        return default


def _argmax(scores: Mapping):
    """The value with the highest score; ties to the smallest, so that a guess is deterministic."""
    best = max(scores.values())
    return min((v for v, s in scores.items() if s == best), key=repr)


class Oracle:
    """Most likely training values, learnt from the training split's truth."""

    def __init__(self, lexicon: Lexicon, train: Iterable[Example]):
        self.lexicon = lexicon
        self.values = _Counts()  # field -> value, keyed by what is seen
        for example in train:
            self._learn(example)

    def _learn(self, example: Example) -> None:
        truth, lexicon = example.truth, self.lexicon
        item = truth.item
        shape = lexicon.category(item.category).shape
        add = self.values.add
        add([("category", shape), ("category",)], item.category)
        add([("brand",)], item.brand)
        add([("spec", shape), ("spec",)], item.spec)
        for rank, head in enumerate(item.attributes, 1):
            add([("head", shape, rank), ("head", rank)], head)
        add([("colour",)], item.colour)
        add([("finish",)], item.finish)
        add([("theme",)], item.theme)
        if truth.has_column:
            add([("glyph",)], item.glyph)
        for box, place in zip(truth.boxes, example.boxes, strict=True):
            add([("slot", truth.has_column), ("slot",)], box.slot)
            add([("length", box.slot)], box.plan.length)
            if box.slot == "column":  # without the image, a column row's own height is all there is
                cell = grid_index(place.y1, LOCATION_GRID)
                add([("rank", cell), ("rank",)], box.plan.rank)
                add([("prices", cell), ("prices",)], (box.plan.price_above, box.plan.price_below))
            if box.slot == "marker":
                add([("marker",)], box.plan.marker)
            if box.slot == "slogan":
                add([("slogan",)], box.plan.slogan)

    # -- guessing --------------------------------------------------------------------------------------
    def guess_item(self, truth: ImageTruth, variant: OracleVariant) -> Item:
        item, mode = truth.item, self.values.mode
        shape = self.lexicon.category(item.category).shape if IMAGE not in variant.denied else None
        guessed = replace(item, theme=mode([("theme",)], 0))
        if INFO in variant.denied:
            attributes = tuple(mode([("head", shape, r), ("head", r)]) for r in range(1, 7))
            guessed = replace(
                guessed,
                category=mode([("category", shape), ("category",)]),
                brand=mode([("brand",)]),
                spec=mode([("spec", shape), ("spec",)]),
                attributes=tuple(a for a in attributes if a is not None),
            )
        if IMAGE in variant.denied:
            guessed = replace(
                guessed, colour=mode([("colour",)], 0), finish=mode([("finish",)], 0), glyph=mode([("glyph",)], 0)
            )
        return guessed

    def guess_plan(
        self, example: Example, b: int, variant: OracleVariant, chain: list[tuple[int, ...]] | None
    ) -> BoxPlan:
        truth, mode = example.truth, self.values.mode
        plan = truth.boxes[b].plan
        slogan = mode([("slogan",)], 0)
        marker = plan.marker if IMAGE not in variant.denied else mode([("marker",)], 0)
        if LOC in variant.denied:  # every box of the image looks alike
            seen = (truth.has_column,) if IMAGE not in variant.denied else ()
            slot = mode([("slot", *seen), ("slot",)])
            if slot == "marker" and IMAGE not in variant.denied and truth.item.markers:
                marker = truth.item.markers[0]
            return BoxPlan(slot, mode([("length", slot)], 0), 1 if slot == "column" else 0, marker, slogan)
        rank, prices = plan.rank, (plan.price_above, plan.price_below)
        if plan.slot == "column" and IMAGE in variant.denied:
            cell = grid_index(example.boxes[b].y1, LOCATION_GRID)
            rank, prices = mode([("rank", cell), ("rank",)], 1), mode([("prices", cell), ("prices",)], (False, False))
        elif plan.slot == "column":
            box = truth.boxes[b]
            rank, *prices = row_posterior(box.rows, box.row, *neighbour_rows(example, b, variant, chain)).most_likely()
        marker = marker if plan.slot == "marker" else plan.marker
        return replace(plan, rank=rank, price_above=prices[0], price_below=prices[1], marker=marker, slogan=slogan)

    def predict(self, examples: Iterable[Example], variant: OracleVariant, draw: int = 0) -> dict[str, str]:
        """Every box's caption as the variant's oracle writes it, keyed ``image_id#box`` (``draw``: which
        draw of random neighbours)."""
        out = {}
        for example in examples:
            item = self.guess_item(example.truth, variant)
            chain = _chains(example, variant, draw)
            for b in range(len(example.truth.boxes)):
                plan = self.guess_plan(example, b, variant, chain)
                if plan.slot == "marker" and plan.marker < 0:
                    plan = replace(plan, marker=self.values.mode([("marker",)], 0))
                out[example.key(b)] = caption_text(self.lexicon, compose(self.lexicon, item, plan))
        return out


def references(examples: Iterable[Example]) -> dict[str, str]:
    """The clean caption of every box, keyed as the predictions."""
    return {example.key(b): box.text for example in examples for b, box in enumerate(example.truth.boxes)}


def info_only_predictions(lexicon: Lexicon, examples: Iterable[Example]) -> dict[str, str]:
    """Captions right on their INFO parts only: every other part is another value of its role (a
    constant of the template, which has no other value, is left out)."""
    others = {
        "mod": lexicon.modifiers,
        "colour": tuple(c for c, _ in lexicon.colours),
        "finish": lexicon.finishes,
        "phrase": tuple(m.phrase for m in lexicon.markers),
        "theme": lexicon.themes,
        "slogan": lexicon.slogans,
        "suffix": lexicon.brand_suffixes,
    }
    out = {}
    for example in examples:
        for b, box in enumerate(example.truth.boxes):
            words = []
            for part in box.parts:
                if part.channel == INFO:
                    words.append(part.text)
                elif part.role in others and len(others[part.role]) > 1:
                    pool = others[part.role]
                    words.append(pool[(pool.index(part.text) + 1) % len(pool)] if part.text in pool else pool[0])
            out[example.key(b)] = lexicon.joiner.join(words)
    return out


def ceilings(
    lexicon: Lexicon,
    train: Sequence[Example],
    evaluated: Sequence[Example],
    variants: Sequence[OracleVariant] = VARIANTS,
    meteor: bool = False,
) -> dict[str, dict[str, float]]:
    """Each variant's oracle scored on ``evaluated`` (BLEU@1-4, CIDEr; METEOR if asked): the ceilings."""
    oracle, refs = Oracle(lexicon, train), references(evaluated)
    mode = "char" if lexicon.lang == "zh" else "word"
    out = {}
    for variant in variants:
        runs = [caption_scores(refs, oracle.predict(evaluated, variant, d), mode, meteor) for d in draws(variant)]
        out[variant.name] = {metric: statistics.fmean(r[metric] for r in runs) for metric in runs[0]}
    return out


def examples_from(truths: Mapping[str, ImageTruth], records: Iterable) -> list[Example]:
    """Examples of the records that have a truth (ingested images have none)."""
    return [Example(truths[r.image_id], tuple(r.caption_boxes)) for r in records if r.image_id in truths]


def field_sheet(lexicon: Lexicon, train: Sequence[Example], evaluated: Sequence[Example]) -> FieldSheet:
    """The parts of every evaluated box, its diagnostic channels (X: the oracle denied X is wrong, the
    full oracle right) and the full oracle's caption (``components.evaluation.fields``)."""
    oracle, refs = Oracle(lexicon, train), references(evaluated)
    full = oracle.predict(evaluated, BY_NAME["full"])
    denied = {channel: oracle.predict(evaluated, BY_NAME[name]) for channel, name in DENYING.items()}
    boxes = {}
    for example in evaluated:
        for b, box in enumerate(example.truth.boxes):
            key = example.key(b)
            needed = full[key] == refs[key]
            diagnostic = frozenset(c for c, guessed in denied.items() if needed and guessed[key] != refs[key])
            boxes[key] = BoxFields(tuple((p.text, p.channel, p.role) for p in box.parts), diagnostic)
    return FieldSheet(lexicon.lang, boxes, full)


def field_ceilings(
    lexicon: Lexicon, train: Sequence[Example], evaluated: Sequence[Example], variants: Sequence[OracleVariant]
) -> dict[str, float]:
    """Each variant's oracle's ``field_accuracy_all`` on ``evaluated``: the share of every scored part
    it writes right, the ceiling a model denied the same inputs is read against."""
    oracle, sheet = Oracle(lexicon, train), field_sheet(lexicon, train, evaluated)
    return {
        v.name: statistics.fmean(
            field_accuracy(sheet, oracle.predict(evaluated, v, d)).get("field_accuracy_all", 0.0) for d in draws(v)
        )
        for v in variants
    }


SplitExamples = tuple[Lexicon, list[Example], list[Example]]


def variant_ceilings(examples: SplitExamples | None, oracles: Mapping[str, str]) -> dict[str, float]:
    """``field_ceilings`` keyed by the caller's names (``oracles``: name to its oracle variant's
    name), each oracle run once; empty for a dataset without a truth."""
    if examples is None:
        return {}
    named = field_ceilings(*examples, [BY_NAME[o] for o in sorted(set(oracles.values()))])
    return {name: named[oracle] for name, oracle in oracles.items()}


def dataset_examples(dataset_table: DatasetTable, evaluated: Iterable[Mapping[str, str]]) -> SplitExamples | None:
    """(lexicon, train examples, examples of the ``evaluated`` index rows) of an indexed dataset; None
    for a dataset without a truth sidecar (CapOnImage2M)."""
    truth = read_truth(dataset_table.dataset)
    if truth is None:
        return None
    train = _indexed_records(head_rows(dataset_table, "train"))
    lexicon = LEXICONS[truth.lang]
    return lexicon, examples_from(truth.images, train), examples_from(truth.images, _indexed_records(evaluated))


def dataset_field_sheet(dataset_table: DatasetTable, evaluated: Iterable[Mapping[str, str]]) -> FieldSheet | None:
    """The field sheet of the ``evaluated`` index rows of an indexed dataset (the rows the caller
    scores, read once), the oracle learnt from its train split; None without a truth sidecar."""
    examples = dataset_examples(dataset_table, evaluated)
    return None if examples is None else field_sheet(*examples)


def split_examples(dataset_table: DatasetTable, split: str, images: int | None) -> SplitExamples | None:
    """``dataset_examples`` of the first ``images`` of a split (all: None), as a study encodes them."""
    return dataset_examples(dataset_table, head_rows(dataset_table, split, images))


def split_field_sheet(dataset_table: DatasetTable, split: str, images: int | None) -> FieldSheet | None:
    """The field sheet of the first ``images`` of a split; None without a truth sidecar."""
    examples = split_examples(dataset_table, split, images)
    return None if examples is None else field_sheet(*examples)


def validation_field_sheet(dataset_table: DatasetTable, val_images: int | None) -> FieldSheet | None:
    """The field sheet of the validation subset a fit scores: the first ``val_images`` of val."""
    return split_field_sheet(dataset_table, "val", val_images)


def _indexed_records(rows: Iterable[Mapping[str, str]]) -> Iterator[ImageRecord]:
    """The records of index rows whose boxes read without the image (a synthetic crawl's are
    fractions); others have no truth to read anyway."""
    for row in rows:
        try:
            yield parse_record_value(row["image_id"], json.loads(row["record"]), None)
        except (ValueError, RecordRejected):
            continue
