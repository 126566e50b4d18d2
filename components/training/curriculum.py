"""Which negative level a caption-matching sample gets, as a function of the global step (SPEC 4).

The paper's progressive curriculum (eq. 6 to 8; the released code never implemented it):

    p1 = min(1, 2 * step^-0.2)          Level I:   a caption of another image
    p3 = min(1, step * 5000^-1.5)       Level III: the caption of a chain neighbour
    p2 = max(0, 1 - p1 - p3)            Level II:  a caption of another box of the same image

renormalised when p1 + p3 > 1 (from about step 297k). The fixed ablation uses 30/40/30, and the
paper's Table 3 rows use single levels or I+II.

Where a run is on that curriculum (``curriculum_step``): the paper's own run reads its global step.
A shorter run either scales its global step (``train.curriculum_scale``), or, with
``train.curriculum_span = P``, spreads the paper's steps 1..P over its own matching steps, first to
last: its first matching batch is the paper's first (Level I only), its last the paper's step P.
``train.curriculum_level1_share = f`` holds the first share f of those matching steps at the paper's
step 1 (Level I alone) and spreads 1..P over the rest: a short run's easy phase, stretched.
"""

from __future__ import annotations

from components.config import NEGATIVE_SCHEDULES, TrainSection
from components.training.schedule import matching_steps_until

SCHEDULES = NEGATIVE_SCHEDULES  # the names a job config accepts
FIXED = (0.3, 0.4, 0.3)


def progressive(step: int) -> tuple[float, float, float]:
    """(p1, p2, p3) at a global optimisation step (steps below 1 count as 1)."""
    step = max(1, step)
    p1 = min(1.0, 2.0 * step**-0.2)
    p3 = min(1.0, step * 5000.0**-1.5)
    if p1 + p3 > 1.0:
        total = p1 + p3
        return (p1 / total, 0.0, p3 / total)
    return (p1, 1.0 - p1 - p3, p3)


def level_probabilities(schedule: str, step: int) -> tuple[float, float, float]:
    """(p1, p2, p3) of a named schedule at ``step``."""
    if schedule == "progressive":
        return progressive(step)
    if schedule == "fixed":
        return FIXED
    if schedule == "level1":
        return (1.0, 0.0, 0.0)
    if schedule == "level12":
        return (0.5, 0.5, 0.0)
    raise ValueError(f"unknown negative schedule '{schedule}'; expected one of {', '.join(SCHEDULES)}")


def curriculum_step(train: TrainSection, step: int) -> int:
    """The paper step whose negative levels global ``step`` of a run trained by ``train`` uses."""
    if train.curriculum_span is None:
        return round(step * train.curriculum_scale)
    total = matching_steps_until(train.steps, train.generation_per_matching)
    done = max(1, matching_steps_until(step, train.generation_per_matching))  # this one included
    easy = round(train.curriculum_level1_share * total)  # matching steps held at the paper's step 1
    if done <= easy:
        return 1
    return 1 + round((done - easy - 1) * (train.curriculum_span - 1) / max(1, total - easy - 1))
