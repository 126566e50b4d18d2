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
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from components.config import JobConfig
from components.data.encoding import EncodeSpec
from components.data.index import read_index
from components.data.pipeline import EncodeImages
from components.data.tokenizer import Tokenizer
from components.evaluation.ablation import Variant
from components.evaluation.diversity import diversity
from components.evaluation.scores import caption_scores
from components.model import build_model
from components.model.batches import ImageCaptions, collate
from components.model.capon import ModelBatch
from components.model.decoding import greedy_decode
from components.training.runner import StepRunner, prepare_for_training
from components.training.validation import VALIDATION_SEED, matching_counts, scoring_pairs

LEVELS = ("positive", "level1", "level2", "level3")
Rows = list[dict[str, np.ndarray]]


def encoded_rows(dataset: str, split: str, tokenizer: Tokenizer, spec: EncodeSpec, limit: int | None) -> Rows:
    """Every image of a split encoded as the pipeline's actors encode it, one dict per image."""
    index = read_index(dataset, split, limit=limit)
    encode = EncodeImages(dataset, None, tokenizer.word2int, tokenizer.mode, spec)
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
            total = totals.setdefault(name.removeprefix("val_matching_accuracy_"), [0.0, 0.0])
            total[0], total[1] = total[0] + right, total[1] + scored
    model.train()
    return {name: right / scored for name, (right, scored) in totals.items() if name in LEVELS and scored}


@torch.no_grad()
def greedy_pairs(model, val_rows: Rows, tokenizer: Tokenizer, device, max_tokens: int) -> list[tuple[str, str, str]]:
    """``(image#box, greedy caption, reference)`` for every box of ``val_rows``, 16 images at a time."""
    model.eval()
    pairs = []
    for start in range(0, len(val_rows), 16):
        rows = stacked(val_rows[start : start + 16])
        batch, _ = collate(rows)
        predicted = greedy_decode(model, batch.to(device), max_tokens=max_tokens).cpu().tolist()
        pairs += scoring_pairs(rows, predicted, tokenizer)
    model.train()
    return pairs


def caption_metrics(model, val_rows: Rows, tokenizer: Tokenizer, device, max_tokens: int) -> dict[str, float]:
    """BLEU@1..4, METEOR (when Java is here), CIDEr and Div@1/2 of greedy captions of ``val_rows``,
    plus the references' own diversity as ``human_Div@1/2``."""
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
    return {**scores, **diversity(generated, tokenizer.mode), **people}


class EncodedSplits:
    """The train split and the first ``val_images`` val images, encoded once per encoding (variants
    differ in their neighbours, so in what an image encodes to)."""

    def __init__(self, dataset: str, tokenizer: Tokenizer, val_images: int, train_images: int | None = None):
        self.dataset, self.tokenizer = dataset, tokenizer
        self.val_images, self.train_images = val_images, train_images
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


def train_variant(
    job: JobConfig,
    variant: Variant,
    seed: int,
    splits: EncodedSplits,
    finetune_steps: int,
    every: int,
    device: torch.device,
    report: Callable[[str], None] = print,
) -> VariantRun:
    """Pre-train ``job.train.steps`` steps with the variant's tasks and negatives (the paper's
    curriculum spread over its matching steps), fine-tune ``finetune_steps`` generation steps as
    every variant does, then score on val."""
    started = time.perf_counter()
    run = VariantRun(variant.name, seed)
    job = job.with_overrides(model=variant.model, train=variant.train_overrides(seed))
    train_rows, val_rows = splits.rows(job)
    torch.manual_seed(seed)
    model = build_model(job.model.with_overrides(vocab_size=len(splits.tokenizer))).to(device)
    val_batches = [collate(stacked(val_rows[i : i + 16])) for i in range(0, len(val_rows), 16)]
    batches = image_batches(train_rows, job.train.images_per_batch, seed)
    finetune = job.train.with_overrides(**variant.finetune_overrides(finetune_steps))
    for train in (job.train, finetune):
        prepare_for_training(model, train)
        runner = StepRunner(model, train, device)  # fine-tuning: optimiser and schedule afresh
        matching = train.generation_per_matching[1] > 0
        for step in range(1, train.steps + 1):
            runner.train_step(step, *next(batches))
            if matching and (step % every == 0 or step == train.steps):
                levels = matching_by_level(model, val_batches, runner.probabilities(step), train.positive_rate, device)
                run.curve.append((step, levels))
                report(f"{variant.name} s{seed} step {step}: " + " ".join(f"{k} {v:.2f}" for k, v in levels.items()))
    run.scores = caption_metrics(model, val_rows, splits.tokenizer, device, job.model.max_caption_tokens)
    run.seconds = time.perf_counter() - started
    cider, div2 = run.scores["CIDEr"], run.scores["Div@2"]
    report(f"{variant.name} s{seed}: CIDEr {cider:.1f}, Div@2 {div2:.1f} ({run.seconds:.0f} s)")
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
    return "\n".join(lines) + "\n"


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
