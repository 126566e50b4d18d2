"""Caption-matching batches: a model batch with each box's caption replaced by a matching sample."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from components.model.batches import ImageCaptions, Tokens, encode_tokens
from components.model.capon import ModelBatch
from components.training.negatives import MatchingSample, matching_samples


def matching_batch(
    batch: ModelBatch,
    images: Sequence[ImageCaptions],
    probabilities: tuple[float, float, float],
    rng: random.Random,
    positive_rate: float,
    pool: Sequence[Tokens] = (),
) -> tuple[ModelBatch, list[MatchingSample]]:
    """The batch with each box's caption replaced by a matching sample; labels in ``extras["labels"]``."""
    samples = matching_samples(images, probabilities, rng, positive_rate, extra_pool=pool)
    length = batch.captions.shape[1]
    captions = torch.tensor([encode_tokens(s.caption, length) for s in samples], dtype=torch.long)
    labels = torch.tensor([float(s.label) for s in samples])
    extras = {**batch.extras, "labels": labels.to(batch.boxes.device)}
    matched = ModelBatch(**{**batch.__dict__, "captions": captions.to(batch.boxes.device), "extras": extras})
    return matched, samples
