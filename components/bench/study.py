"""The paper's ablation on one device, without Ray or MLflow.

The variants of ``components.evaluation.ablation`` trained by the shared step runner with equal
budgets (the same pre-training steps, then the same generation fine-tuning), matching accuracy per
negative level followed during pre-training, and the fine-tuned model scored on val. Used by
``bench/ablation_bench.py`` and ``bench/matching_bench.py``: a GPU machine may have torch but neither
Ray nor MLflow. ``flows/ablate.py`` runs the same variants as tracked Ray Train jobs.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from components import storage
from components.config import JobConfig
from components.data.pipeline.stream import EncodeImages
from components.data.record.tokenizer import PAD, Tokenizer
from components.data.release.format import IMAGES_DIR
from components.data.release.table import read_split
from components.data.transforms.encoding import EncodeSpec
from components.evaluation.ablation import Variant
from components.evaluation.diversity import diversity
from components.evaluation.fields import FieldSheet, field_accuracy
from components.evaluation.scores import caption_scores
from components.model import build_model
from components.model.batches import ImageCaptions, collate
from components.model.capon import ModelBatch
from components.model.decoding import greedy_decode
from components.training.steps import StepRunner, prepare_for_training
from components.training.validation import VALIDATION_SEED, matching_counts, scoring_pairs

LEVELS = ("positive", "level1", "level2", "level3")
Rows = list[dict[str, np.ndarray]]


def encoded_rows(dataset: str, split: str, tokenizer: Tokenizer, spec: EncodeSpec, limit: int | None) -> Rows:
    """Every image of a split encoded as the pipeline's actors encode it, one dict per image."""
    index = read_split(dataset, split, limit=limit)
    encode = EncodeImages(storage.join(dataset, IMAGES_DIR), tokenizer, spec)
    rows = []
    for start in range(0, len(index), 64):
        part = index[start : start + 64]
        ids, records = np.array([r["image_id"] for r in part]), np.array([r["record"] for r in part])
        batch = encode({"image_id": ids, "record": records})
        rows += [{key: batch[key][i] for key in batch} for i in range(len(batch["n_boxes"]))]
    return rows


def stacked(rows: Rows) -> dict[str, np.ndarray]:
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def image_batches(rows: Rows, images: int, seed: int) -> Iterator[tuple[ModelBatch, list[ImageCaptions]]]:
    """Endless batches of ``images`` images, each epoch in a new order drawn from ``seed``."""
    order, rng = list(range(len(rows))), random.Random(seed)
    while True:
        rng.shuffle(order)
        for start in range(0, len(order) - images + 1, images):
            yield collate(stacked([rows[i] for i in order[start : start + images]]))


@torch.no_grad()
def matching_by_level(model, val_batches, probabilities, positive_rate: float, device) -> dict[str, float]:
    """Matching accuracy on true captions and on negatives of each level alone, as validation scores
    it (chance is 0.5 on each; a head that always answers "no" scores 0 on positives, 1 on levels)."""
    model.eval()
    rng = random.Random(VALIDATION_SEED)
    totals: dict[str, list[float]] = {}
    for batch, images in val_batches:
        for name, (right, scored) in matching_counts(
            model, batch.to(device), images, probabilities, positive_rate, rng
        ).items():
            total = totals.setdefault(name.removeprefix("matching_accuracy_"), [0.0, 0.0])
            total[0], total[1] = total[0] + right, total[1] + scored
    model.train()
    return {name: right / scored for name, (right, scored) in totals.items() if name in LEVELS and scored}


@torch.no_grad()
def greedy_pairs(
    model,
    val_rows: Rows,
    tokenizer: Tokenizer,
    device,
    max_tokens: int,
    control: Callable[[ModelBatch], ModelBatch] | None = None,
) -> list[tuple[str, str, str]]:
    """``(image#box, greedy caption, reference)`` for every box of ``val_rows``, 16 images at a time
    (``control``: what each batch goes through first, e.g. one input removed)."""
    model.eval()
    pairs = []
    for start in range(0, len(val_rows), 16):
        rows = stacked(val_rows[start : start + 16])
        batch, _ = collate(rows)
        batch = control(batch) if control is not None else batch
        predicted = greedy_decode(model, batch.to(device), max_tokens=max_tokens).cpu().tolist()
        pairs += scoring_pairs(rows, predicted, tokenizer)
    model.train()
    return pairs


def caption_metrics(
    model, val_rows: Rows, tokenizer: Tokenizer, device, max_tokens: int, fields: FieldSheet | None = None
) -> dict[str, float]:
    """BLEU@1..4, METEOR (when Java is here), CIDEr and Div@1/2 of greedy captions of ``val_rows``,
    plus the references' own diversity as ``human_Div@1/2``, and field accuracy given a ``fields`` sheet."""
    pairs = greedy_pairs(model, val_rows, tokenizer, device, max_tokens)
    generated: dict[str, list[str]] = {}
    human: dict[str, list[str]] = {}
    for key, prediction, reference in pairs:
        image = key.rsplit("#", 1)[0]
        generated.setdefault(image, []).append(prediction)
        human.setdefault(image, []).append(reference)
    references = {key: reference for key, _, reference in pairs}
    predictions = {key: prediction for key, prediction, _ in pairs}
    scores = caption_scores(references, predictions, tokenizer.mode, meteor=shutil.which("java") is not None)
    people = {f"human_{k}": v for k, v in diversity(human, tokenizer.mode).items()}
    parts = field_accuracy(fields, predictions) if fields is not None else {}
    return {**scores, **diversity(generated, tokenizer.mode), **people, **parts}


class EncodedSplits:
    """The train split (its first ``train_images``) and the first ``val_images`` val images, encoded
    once per encoding (variants differ in their neighbours, so in what an image encodes to), with the
    field sheets of those images where the caller has them (a synthetic crawl's, built by evaluation:
    training never reads the truth)."""

    def __init__(
        self,
        dataset: str,
        tokenizer: Tokenizer,
        val_images: int,
        train_images: int | None = None,
        fields: FieldSheet | None = None,
        train_fields: FieldSheet | None = None,
    ):
        self.dataset, self.tokenizer = dataset, tokenizer
        self.val_images, self.train_images = val_images, train_images
        self.fields, self.train_fields = fields, train_fields
        self._cache: dict[EncodeSpec, tuple[Rows, Rows]] = {}

    def rows(self, job: JobConfig) -> tuple[Rows, Rows]:
        spec = EncodeSpec.for_model(job.model, job.data.max_boxes, seed=job.train.seed)
        if spec not in self._cache:
            train = encoded_rows(self.dataset, "train", self.tokenizer, spec, self.train_images)
            val = encoded_rows(self.dataset, "val", self.tokenizer, spec, self.val_images)
            self._cache[spec] = (train, val)
        return self._cache[spec]


@dataclass
class VariantRun:
    """One variant and seed: matching accuracy per level over pre-training steps, the scores after
    fine-tuning, and how long it took."""

    variant: str
    seed: int
    curve: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    controls: dict[str, tuple[float, float]] = field(default_factory=dict)  # input: V_X accuracy as built, without


def train_variant(
    job: JobConfig,
    variant: Variant,
    seed: int,
    splits: EncodedSplits,
    finetune_steps: int,
    every: int,
    device: torch.device,
    report: Callable[[str], None] = print,
    controls: str | None = None,
) -> VariantRun:
    """Pre-train ``job.train.steps`` steps with the variant's tasks and negatives (the paper's
    curriculum spread over its matching steps), fine-tune ``finetune_steps`` generation steps as
    every variant does (0: none), then score on val. ``controls`` (``"val"`` or ``"train"``): also
    the negative controls on that split's images, where the dataset has a truth."""
    started = time.perf_counter()
    run = VariantRun(variant.name, seed)
    job = job.with_overrides(model=variant.model, train=variant.train_overrides(seed))
    train_rows, val_rows = splits.rows(job)
    torch.manual_seed(seed)
    model = build_model(job.model.with_overrides(vocab_size=len(splits.tokenizer))).to(device)
    val_batches = [collate(stacked(val_rows[i : i + 16])) for i in range(0, len(val_rows), 16)]
    batches = image_batches(train_rows, job.train.images_per_batch, seed)
    stages = [job.train]
    if finetune_steps:
        stages.append(job.train.with_overrides(**variant.finetune_overrides(finetune_steps)))
    for train in stages:
        prepare_for_training(model, train)
        runner = StepRunner(model, train, device)  # fine-tuning: optimiser and schedule afresh
        matching = train.generation_per_matching[1] > 0
        for step in range(1, train.steps + 1):
            runner.train_step(step, *next(batches))
            if matching and (step % every == 0 or step == train.steps):
                levels = matching_by_level(model, val_batches, runner.probabilities(step), train.positive_rate, device)
                run.curve.append((step, levels))
                report(f"{variant.name} s{seed} step {step}: " + " ".join(f"{k} {v:.2f}" for k, v in levels.items()))
    tokens = job.model.max_caption_tokens
    run.scores = caption_metrics(model, val_rows, splits.tokenizer, device, tokens, splits.fields)
    sheet, rows = (splits.fields, val_rows) if controls == "val" else (splits.train_fields, train_rows)
    if controls and sheet is not None:
        run.controls = negative_controls(model, rows, splits.tokenizer, sheet, device, tokens)
        report(f"{variant.name} s{seed} controls on {controls}: " + control_text(run.controls))
    run.seconds = time.perf_counter() - started
    cider, div2 = run.scores["CIDEr"], run.scores["Div@2"]
    parts = "".join(
        f", {name.removeprefix('field_accuracy_')} {100 * run.scores[name]:.0f}"
        for name in ("field_accuracy_info_diag", "field_accuracy_image_diag", "field_accuracy_all")
        if name in run.scores
    )
    report(f"{variant.name} s{seed}: CIDEr {cider:.1f}, Div@2 {div2:.1f}{parts} ({run.seconds:.0f} s)")
    return run


def curve_markdown(runs: list[VariantRun]) -> str:
    """Matching accuracy per level at each logged pre-training step, mean over seeds, per matching variant."""
    by_variant: dict[str, dict[int, list[dict[str, float]]]] = {}
    for run in runs:
        for step, levels in run.curve:
            by_variant.setdefault(run.variant, {}).setdefault(step, []).append(levels)
    lines = [
        "## Caption matching during pre-training",
        "",
        "Validation matching accuracy on true captions and on negatives of each level alone (chance 0.5; "
        "a head that always answers no scores 0 on positives, 1 on every level), mean over seeds.",
        "",
        "| variant | step | " + " | ".join(LEVELS) + " |",
        "| --- | ---: |" + " ---: |" * len(LEVELS),
    ]
    for variant, steps in by_variant.items():
        for step, seen in sorted(steps.items()):
            means = [
                np.mean([levels[k] for levels in seen if k in levels]) if any(k in s for s in seen) else np.nan
                for k in LEVELS
            ]
            lines.append(f"| {variant} | {step} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
    return "\n".join([*lines, "", level_ordering(runs)]) + "\n"


def level_ordering(runs: list[VariantRun]) -> str:
    """The paper's claim that harder negatives are harder (Level I >= II >= III), judged on the readings
    (each variant's, seed's and step's) where the head accepts more than half the true captions: below
    that, a head that mostly answers no scores high on every level and orders nothing."""
    readings = [levels for run in runs for _, levels in run.curve if all(k in levels for k in LEVELS)]
    telling = [r for r in readings if r["positive"] > 0.5]
    ordered = sum(r["level1"] >= r["level2"] >= r["level3"] for r in telling)
    if not telling:
        return (
            f"Level I >= II >= III: not judged: positives exceed 0.5 in none of the {len(readings)} readings "
            "with every level (the head rejects most true captions)."
        )
    return (
        f"Level I >= II >= III: holds in {ordered} of the {len(telling)} readings where positives exceed 0.5 "
        f"(of {len(readings)} with every level)."
    )


# -- the image probe -----------------------------------------------------------------------------------
PROBE_MODEL = {"use_info": False, "neighbours": "none"}  # the image and the box's own place, nothing else


class PixelCells(torch.nn.Module):
    """``(B, 3, 32k, 32k)`` uint8 to each cell's ``sub x sub`` average pixels in [-1, 1]: ``(B, k*k,
    3*sub*sub)``, cells row-major as the trunk's. The probe's control for the trunk: nothing to learn."""

    def __init__(self, grid: int, sub: int = 4):
        super().__init__()
        self.grid, self.sub, self.channels = grid, sub, 3 * sub * sub

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(images.float() / 127.5 - 1.0, self.grid * self.sub)  # (B, 3, k*sub, k*sub)
        b, k, sub = x.shape[0], self.grid, self.sub
        x = x.view(b, 3, k, sub, k, sub).permute(0, 2, 4, 1, 3, 5)  # (B, k, k, 3, sub, sub)
        return x.reshape(b, k * k, self.channels)  # (B, k*k, 3*sub*sub), cells row-major


def exact_match(model, val_rows: Rows, tokenizer: Tokenizer, device, max_tokens: int) -> float:
    """The share of val boxes whose greedy caption is exactly the reference."""
    pairs = greedy_pairs(model, val_rows, tokenizer, device, max_tokens)
    return sum(p == r for _, p, r in pairs) / max(len(pairs), 1)


def probe_curve(
    job: JobConfig,
    splits: EncodedSplits,
    device: torch.device,
    every: int,
    report: Callable[[str], None] = print,
    image_cells: torch.nn.Module | None = None,
) -> list[tuple[int, float, float]]:
    """Train ``job`` without its info or neighbours, generation only, for ``job.train.steps`` steps on
    an image probe (``components.data.synthetic.probe``); ``(step, val exact, train exact)`` every
    ``every`` steps, train exact on as many train images as val has (underfitting or not generalising).

    ``image_cells`` (``(B, 3, 32k, 32k)`` uint8 to ``(B, k*k, C)``, with ``C`` in an attribute
    ``channels``) stands in for the ResNet trunk: the probe can so tell a trunk that learns too slowly
    from a transformer that does not read the image tokens it is given."""
    job = job.with_overrides(model=PROBE_MODEL, train={"generation_per_matching": (1, 0)})
    train_rows, val_rows = splits.rows(job)
    torch.manual_seed(job.train.seed)
    model = build_model(job.model.with_overrides(vocab_size=len(splits.tokenizer)), image_cells).to(device)
    prepare_for_training(model, job.train)
    runner = StepRunner(model, job.train, device)
    batches = image_batches(train_rows, job.train.images_per_batch, job.train.seed)
    seen, tokens = train_rows[: len(val_rows)], job.model.max_caption_tokens
    curve, started = [], time.perf_counter()
    for step in range(1, job.train.steps + 1):
        runner.train_step(step, *next(batches))
        if step % every == 0 or step == job.train.steps:
            val, train = (exact_match(model, rows, splits.tokenizer, device, tokens) for rows in (val_rows, seen))
            curve.append((step, val, train))
            seconds = time.perf_counter() - started
            report(f"probe step {step}: exact {val:.3f} on val, {train:.3f} on train ({seconds:.0f} s)")
    return curve


# -- negative controls ---------------------------------------------------------------------------------
def info_as_padding(batch: ModelBatch) -> ModelBatch:
    """The batch with every info token padding: the product info silently gone."""
    return replace(batch, info_ids=torch.full_like(batch.info_ids, PAD))


def blank_images(batch: ModelBatch) -> ModelBatch:
    """The batch with every image black: the pixels silently gone (the boxes' places stay)."""
    return replace(batch, images=torch.zeros_like(batch.images))


def shuffled_neighbours(batch: ModelBatch) -> ModelBatch:
    """The batch with every box given another box's neighbours (a fixed derangement when it has two
    boxes or more): the neighbours are there, but not this box's."""
    n = batch.num_boxes
    if n < 2:
        return batch
    cycle = torch.randperm(n, generator=torch.Generator().manual_seed(VALIDATION_SEED))  # one n-cycle
    order = torch.empty_like(cycle)
    order[cycle] = torch.roll(cycle, -1)  # box cycle[i] takes the neighbours of box cycle[i + 1]
    return replace(batch, neighbour_boxes=batch.neighbour_boxes[order], neighbour_valid=batch.neighbour_valid[order])


CONTROLS = {"info": info_as_padding, "image": blank_images, "ctx": shuffled_neighbours}  # by the input removed


def negative_controls(
    model, val_rows: Rows, tokenizer: Tokenizer, fields: FieldSheet, device, max_tokens: int
) -> dict[str, tuple[float, float]]:
    """For each input X of ``CONTROLS``: (field accuracy on V_X as built, the same with X removed from
    every batch). A model that reads X loses there; one that does not, loses nothing."""

    def on_diag(control=None) -> dict[str, float]:
        pairs = greedy_pairs(model, val_rows, tokenizer, device, max_tokens, control)
        return field_accuracy(fields, {key: prediction for key, prediction, _ in pairs})

    built = on_diag()
    out = {}
    for channel, control in CONTROLS.items():
        name = f"field_accuracy_{channel}_diag"
        if name in built:
            out[channel] = (built[name], on_diag(control).get(name, 0.0))
    return out


def control_text(controls: dict[str, tuple[float, float]]) -> str:
    """``info 62 -> 3, ...``: V_X field accuracy in points, as built and with X removed."""
    return ", ".join(f"{x} {100 * a:.0f} -> {100 * b:.0f}" for x, (a, b) in controls.items())
