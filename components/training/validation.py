"""Validation during training: generation loss, matching accuracy, and greedy CIDEr on a val subset.

Each rank scores its shard; sums are all-reduced and predictions gathered, so CIDEr is computed once
over the whole subset (not averaged per worker). Works without torch.distributed too.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
import torch
import torch.distributed as dist

from components.data.tokenizer import Tokenizer
from components.evaluation.scores import cider
from components.model.batches import collate
from components.model.decoding import greedy_decode
from components.training.matching import matching_batch
from components.training.runner import generation_loss, unwrap

VALIDATION_SEED = 1234  # the same negatives at every validation, so accuracies compare across steps


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


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    rows: Iterable[dict[str, np.ndarray]],
    tokenizer: Tokenizer,
    probabilities: tuple[float, float, float] | None,
    positive_rate: float,
    device: torch.device,
    max_tokens: int = 10,
) -> dict[str, float]:
    """``probabilities`` None skips caption matching (a generation-only model)."""
    inner = unwrap(model)
    was_training = inner.training
    inner.eval()
    rng = random.Random(VALIDATION_SEED)
    loss_sum = tokens = correct = matched = 0.0
    pairs: list[tuple[str, str, str]] = []
    for batch_rows in rows:
        if len(batch_rows["n_boxes"]) == 0:
            continue
        batch, images = collate(batch_rows)
        batch = batch.to(device)
        loss, count = generation_loss(inner(batch, task="generation").logits, batch.captions)
        loss_sum, tokens = loss_sum + float(loss) * count, tokens + count
        if probabilities is not None:
            pairs_batch, _ = matching_batch(batch, images, probabilities, rng, positive_rate)
            logits = inner(pairs_batch, task="matching").match_logits.float()
            correct += float(((logits > 0).float() == pairs_batch.extras["labels"]).sum())
            matched += len(logits)
        predicted = greedy_decode(inner, batch, max_tokens=max_tokens).cpu().tolist()
        references = batch.captions[:, 1:].cpu().tolist()
        owners = batch.image_index.cpu().tolist()
        for box, (prediction, reference, owner) in enumerate(zip(predicted, references, owners, strict=True)):
            key = f"{batch_rows['image_id'][owner]}#{box}"
            pairs.append((key, tokenizer.decode(prediction), tokenizer.decode(reference)))
    loss_sum, tokens, correct, matched = _all_reduce([loss_sum, tokens, correct, matched], device)
    pairs = _gather(pairs)
    inner.train(was_training)
    metrics = {
        "val_loss_generation": loss_sum / max(tokens, 1.0),
        "val_cider": cider({k: r for k, _, r in pairs}, {k: p for k, p, _ in pairs}, tokenizer.mode),
        "val_boxes": float(len(pairs)),
    }
    if probabilities is not None:
        metrics["val_matching_accuracy"] = correct / max(matched, 1.0)
    return metrics
