"""Step-indexed schedules: the learning rate and which task a step trains."""

from __future__ import annotations

import math

TASKS = ("generation", "matching")


def warmup_inverse_sqrt(step: int, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate: linear warm-up to 1 at ``warmup_steps``, then
    ``sqrt(warmup / step)`` (the "Noam" schedule of the released code, normalised to its peak)."""
    step = max(1, step)
    if warmup_steps <= 0:
        return 1.0
    return min(step / warmup_steps, math.sqrt(warmup_steps / step))


def task_for_step(step: int, generation_per_matching: tuple[int, int] = (3, 1)) -> str:
    """The task of a global step: ``g`` generation steps then ``m`` matching steps, repeating.

    A pure function of the step, so every rank trains the same task in a step (DDP needs the same
    parameters to receive gradients everywhere). ``(1, 0)`` trains generation only (fine-tuning).
    """
    generation, matching = generation_per_matching
    if matching == 0:
        return "generation"
    if generation == 0:
        return "matching"
    return "generation" if step % (generation + matching) < generation else "matching"


def matching_steps_until(step: int, generation_per_matching: tuple[int, int] = (3, 1)) -> int:
    """How many of the global steps 1..``step`` train matching (``task_for_step`` counted)."""
    generation, matching = generation_per_matching
    cycle = generation + matching
    return (step // cycle) * matching + max(0, step % cycle - generation)
