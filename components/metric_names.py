"""The names runs log their metrics under: one name per quantity, a prefix per source.

MLflow's charts view groups a run's metrics by the part of the name before the first ``/``, so the
prefix is the section a user finds a chart in, and two runs compare on the same name only when they
measured the same thing on the same data:

    train/          the training window since the last report: loss_generation, loss_matching,
                    matching_accuracy, grad_norm, lr, boxes_per_s, seconds_per_step
    negatives/      the caption-matching curriculum's draw at that step: another_image (level I),
                    another_box (level II), neighbour (level III)
    val_subset/     validation during training, on the val subset (``data.val_images`` images):
                    loss_generation, CIDEr, boxes, matching_accuracy[_positive|_level1..3],
                    field_accuracy_<input>
    val/, test/     an evaluation of a split (its first ``eval.images`` where set): CIDEr, BLEU-4,
                    METEOR, Div-2, boxes, images, field_accuracy_<input>, oracle_<score>, ...
    candidate/, champion/   a retrain's side-by-side test evaluations (fields and publishing)
    data/           records skipped by reason, a retrain's data-gate figures and replay mix
    sweep/          a Tune sweep's trial counts
    <variant>/      an ablation's per-seed scores (``full/s0_CIDEr``); ceiling/ the oracle's ceilings

Scores keep their paper names (``CIDEr``, ``BLEU-4``) wherever they appear, so ``val_subset/CIDEr``
and ``val/CIDEr`` sit side by side in the runs table and differ only in what they were scored on.
"""

from __future__ import annotations

from collections.abc import Mapping

TRAIN = "train"
NEGATIVES = "negatives"
VAL_SUBSET = "val_subset"
DATA = "data"
SWEEP = "sweep"
CEILING = "ceiling"

# The curriculum's negative levels I, II, III (paper Section 3.3), in the order it draws them.
NEGATIVE_LEVELS = ("another_image", "another_box", "neighbour")

# What the training loop reports at every validation: the sections a Tune metric may come from.
TRAINING_SECTIONS = (TRAIN, VAL_SUBSET)


def metric_key(section: str, name: str) -> str:
    """The logged name of ``name`` in ``section``: ``section/name``."""
    return f"{section}/{name}"


def named(section: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """Every metric of ``metrics`` under ``section``."""
    return {metric_key(section, name): value for name, value in metrics.items()}


def section_of(name: str) -> str:
    """The section a logged name belongs to (empty for a name without one)."""
    head, slash, _ = name.partition("/")
    return head if slash else ""


VALIDATION_CIDER = metric_key(VAL_SUBSET, "CIDEr")  # the Tune metric and the chart a user watches while training
