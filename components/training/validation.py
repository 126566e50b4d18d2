"""Validation during training: generation loss, matching accuracy, and greedy CIDEr on a val subset.

Matching accuracy is reported under the curriculum's current mix (``matching_accuracy``) and
apart: on true captions (``..._positive``) and on negatives of each level alone (``..._level1`` to
``..._level3``), so that a head answering "no" to everything shows as 0 on positives, not as 0.6.

Each rank scores its shard; sums are all-reduced and predictions gathered, so CIDEr is computed once
over the whole subset (not averaged per worker). Works without torch.distributed too.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
import torch
import torch.distributed as dist

from components.data.record.tokenizer import Tokenizer
from components.data.transforms.encoding import row_references
from components.evaluation.fields import FieldSheet, field_accuracy
from components.evaluation.scores import cider
from components.model.batches import collate
from components.model.decoding import greedy_decode
from components.training.matching import matching_batch
from components.training.steps import generation_loss, unwrap

VALIDATION_SEED = 1234  # the same negatives at every validation, so accuracies compare across steps
# Each matching view of a val batch: (name, level probabilities, positive rate, the level scored);
# None: the curriculum's probabilities and rate, every sample scored.
MATCHING_VIEWS = (
    ("matching_accuracy", None, None, None),
    ("matching_accuracy_positive", (1.0, 0.0, 0.0), 1.0, 0),
    ("matching_accuracy_level1", (1.0, 0.0, 0.0), 0.0, 1),
    ("matching_accuracy_level2", (0.0, 1.0, 0.0), 0.0, 2),
    ("matching_accuracy_level3", (0.0, 0.0, 1.0), 0.0, 3),
)


def _all_reduce(values: list[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor.tolist()


def _gather(items: list) -> list:
    if not (dist.is_available() and dist.is_initialized()):
        return items
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


def scoring_pairs(
    rows: dict[str, np.ndarray], predicted: list[list[int]], tokenizer: Tokenizer
) -> list[tuple[str, str, str]]:
    """``(image#box, prediction, reference)`` for every box of a batch of encoded rows, the reference
    being the raw caption string (a caption rebuilt from token ids would read ``<unk>`` for any
    character outside the vocabulary, and score five wrong characters)."""
    references = row_references(rows)
    pairs = []
    for image, image_id in enumerate(rows["image_id"]):
        for box, reference in enumerate(references[image]):
            pairs.append((f"{image_id}#{box}", tokenizer.decode(predicted[len(pairs)]), reference))
    return pairs


def matching_counts(
    model: torch.nn.Module,
    batch,
    images,
    probabilities: tuple[float, float, float],
    positive_rate: float,
    rng: random.Random,
) -> dict[str, tuple[float, float]]:
    """(correct, scored) per matching view of one batch. A level view scores only the negatives that
    really came from that level (an impossible level falls back to an easier one)."""
    counts = {}
    for name, view_probabilities, view_rate, level in MATCHING_VIEWS:
        view_probabilities = view_probabilities or probabilities
        pairs_batch, samples = matching_batch(
            batch, images, view_probabilities, rng, positive_rate if view_rate is None else view_rate
        )
        right = (model(pairs_batch, task="matching").match_logits.float() > 0).float() == pairs_batch.extras["labels"]
        if level is not None:
            right = right[torch.tensor([s.level == level for s in samples], device=right.device)]
        counts[name] = (float(right.sum()), float(right.numel()))
    return counts


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    rows: Iterable[dict[str, np.ndarray]],
    tokenizer: Tokenizer,
    probabilities: tuple[float, float, float] | None,
    positive_rate: float,
    device: torch.device,
    max_tokens: int = 10,
    fields: FieldSheet | None = None,
) -> dict[str, float]:
    """``probabilities`` None skips caption matching (a generation-only model); ``fields``: the val
    subset's field sheet (a synthetic crawl's), for ``field_accuracy_<input>`` and the rest.

    The names are the scores' own; the training loop logs them under ``val_subset/``."""
    inner = unwrap(model)
    was_training = inner.training
    inner.eval()
    rng = random.Random(VALIDATION_SEED)
    loss_sum = tokens = 0.0
    matching = {view[0]: [0.0, 0.0] for view in MATCHING_VIEWS}  # correct, scored
    pairs: list[tuple[str, str, str]] = []
    for batch_rows in rows:
        if len(batch_rows["n_boxes"]) == 0:
            continue
        batch, images = collate(batch_rows)
        batch = batch.to(device)
        loss, count = generation_loss(inner(batch, task="generation").logits, batch.captions)
        loss_sum, tokens = loss_sum + float(loss) * count, tokens + count
        if probabilities is not None:
            counts = matching_counts(inner, batch, images, probabilities, positive_rate, rng)
            for name, (right, scored) in counts.items():
                matching[name][0] += right
                matching[name][1] += scored
        predicted = greedy_decode(inner, batch, max_tokens=max_tokens).cpu().tolist()
        pairs += scoring_pairs(batch_rows, predicted, tokenizer)
    sums = _all_reduce([loss_sum, tokens, *(value for pair in matching.values() for value in pair)], device)
    loss_sum, tokens, sums = sums[0], sums[1], sums[2:]
    pairs = _gather(pairs)
    inner.train(was_training)
    metrics = {
        "loss_generation": loss_sum / max(tokens, 1.0),
        "CIDEr": cider({k: r for k, _, r in pairs}, {k: p for k, p, _ in pairs}, tokenizer.mode),
        "boxes": float(len(pairs)),
    }
    if fields is not None:
        metrics.update(field_accuracy(fields, {k: p for k, p, _ in pairs}))
    if probabilities is not None:
        for i, name in enumerate(matching):
            right, scored = sums[2 * i], sums[2 * i + 1]
            if scored:  # a level no val image allows (e.g. no neighbours) has no accuracy
                metrics[name] = right / scored
    return metrics
