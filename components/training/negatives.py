"""Caption-matching samples (SPEC 4), built where the global step is known.

40% of boxes keep their true caption (label 1); the rest get a negative (label 0) from a level drawn
with the curriculum's probabilities:

- Level I:   a caption of another image;
- Level II:  a caption of another box of the same image;
- Level III: the caption of the box's previous or next chain neighbour.

A negative equal to the true caption is redrawn (candidates equal to it are excluded). Where a level
is impossible (one box, no neighbour, all candidates equal to the truth) it falls back to the next
easier level; where every level is impossible the sample becomes an honest positive (label 1), never
a negative that silently holds the true caption.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from components.data.transforms.neighbours import NO_NEIGHBOUR
from components.model.batches import ImageCaptions

POSITIVE_RATE = 0.4


@dataclass(frozen=True)
class MatchingSample:
    caption: str  # what the model reads
    label: int  # 1: the box's true caption, 0: a negative
    level: int  # 0 for a positive; else the level the negative came from
    requested_level: int  # 0 for a positive; else the level drawn (differs after a fallback)


def _candidates(level: int, image: ImageCaptions, box: int, other_images: Sequence[str]) -> list[str]:
    truth = image.captions[box]
    if level == 3:
        pool = [image.captions[j] for j in image.neighbours[box] if j != NO_NEIGHBOUR]
    elif level == 2:
        pool = [c for j, c in enumerate(image.captions) if j != box]
    else:
        pool = list(other_images)
    return [c for c in pool if c != truth]


def negative_for(
    level: int, image: ImageCaptions, box: int, other_images: Sequence[str], rng: random.Random
) -> tuple[str, int] | None:
    """A negative caption and the level it came from, falling back 3 -> 2 -> 1; None if none exists."""
    for tried in range(level, 0, -1):
        candidates = _candidates(tried, image, box, other_images)
        if candidates:
            return rng.choice(candidates), tried
    return None


def matching_samples(
    images: Sequence[ImageCaptions],
    probabilities: tuple[float, float, float],
    rng: random.Random,
    positive_rate: float = POSITIVE_RATE,
    extra_pool: Sequence[str] = (),
) -> list[MatchingSample]:
    """One sample per box of every image, in order. ``extra_pool`` adds Level I captions from elsewhere
    (e.g. recent batches) for batches that hold a single image."""
    all_captions = [(i, c) for i, image in enumerate(images) for c in image.captions]
    samples = []
    for i, image in enumerate(images):
        other_images = [c for j, c in all_captions if j != i] + list(extra_pool)
        for box, truth in enumerate(image.captions):
            if rng.random() < positive_rate:
                samples.append(MatchingSample(truth, 1, 0, 0))
                continue
            level = rng.choices((1, 2, 3), weights=probabilities)[0]
            drawn = negative_for(level, image, box, other_images, rng)
            if drawn is None:  # nothing differs from the truth anywhere: an honest positive
                samples.append(MatchingSample(truth, 1, 0, 0))
            else:
                samples.append(MatchingSample(drawn[0], 0, drawn[1], level))
    return samples
