"""Candidate against champion on the same test images: a paired bootstrap of the gate metric's gain,
guardrails on Div@2, BLEU@4 and the publishing checks' violation rates, and the decision with its
reasons (pure: no Ray, no MLflow).

The gain is CIDEr's: each box's CIDEr-D with the document frequencies of the whole test split, summed
per image; a resample draws images with replacement and takes (candidate sum - champion sum) / boxes,
so each image keeps its own pairing of the two models. Promotion needs the interval's lower end above
``min_gain``: a gain the noise of this test set could produce does not move the champion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.config import RetrainSection
from components.evaluation.scores import cider_per_box
from components.publishing.rates import violation_rates

GUARDRAILS = (("Div@2", "max_div2_drop"), ("BLEU@4", "max_bleu4_drop"))
COMPARED = ("BLEU@1", "BLEU@4", "METEOR", "CIDEr", "Div@1", "Div@2")  # the comparison picture's metrics


@dataclass(frozen=True)
class Interval:
    """A gain and its bootstrap interval, in metric points."""

    estimate: float
    low: float
    high: float
    confidence: float
    samples: int

    def text(self) -> str:
        return f"{self.estimate:+.2f} [{100 * self.confidence:g}% CI {self.low:+.2f}, {self.high:+.2f}]"


def per_image_cider(rows: Sequence[Mapping[str, Any]], mode: str) -> dict[str, tuple[float, int]]:
    """image id -> (sum of its boxes' CIDEr-D x 100, its boxes), from an evaluation's prediction rows."""
    references = {f"{r['image_id']}#{r['box']}": str(r["reference"]) for r in rows}
    predictions = {f"{r['image_id']}#{r['box']}": str(r["prediction"]) for r in rows}
    sums: dict[str, list] = {}
    for key, value in cider_per_box(references, predictions, mode).items():
        image_id = key.rsplit("#", 1)[0]
        total = sums.setdefault(image_id, [0.0, 0])
        total[0] += value
        total[1] += 1
    return {k: (v[0], v[1]) for k, v in sums.items()}


def paired_gain(
    candidate: Sequence[Mapping[str, Any]],
    champion: Sequence[Mapping[str, Any]],
    mode: str,
    *,
    samples: int,
    confidence: float,
    seed: int = 0,
) -> Interval:
    """The candidate's CIDEr gain over the champion on the same boxes, with a paired bootstrap interval
    over images. Both must have scored the same boxes against the same references."""
    boxes = {(r["image_id"], int(r["box"]), str(r["reference"])) for r in candidate}
    if boxes != {(r["image_id"], int(r["box"]), str(r["reference"])) for r in champion}:
        raise ValueError("the candidate and the champion were scored on different boxes or references")
    ours, theirs = per_image_cider(candidate, mode), per_image_cider(champion, mode)
    images = sorted(ours)
    gains = np.array([ours[i][0] - theirs[i][0] for i in images])
    counts = np.array([ours[i][1] for i in images], dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(images), size=(samples, len(images)))
    resampled = gains[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return Interval(float(gains.sum() / counts.sum()), float(low), float(high), confidence, samples)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    gain: Interval | None = None
    compared_with: str | None = None  # the champion's version, None when there was none

    def tags(self) -> dict[str, str]:
        tags = {
            "retrain_decision": "promote" if self.promote else "keep_champion",
            "retrain_reasons": "; ".join(self.reasons)[:4000],
            "retrain_compared_with": self.compared_with or "none",
        }
        if self.gain is not None:
            tags.update(
                retrain_gain=f"{self.gain.estimate:.4f}",
                retrain_interval=f"[{self.gain.low:.4f}, {self.gain.high:.4f}]",
                retrain_confidence=f"{self.gain.confidence:g}",
            )
        return tags

    def as_dict(self) -> dict[str, Any]:
        gain = None if self.gain is None else self.gain.__dict__
        return {"promote": self.promote, "reasons": self.reasons, "gain": gain, "compared_with": self.compared_with}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Decision:
        gain = None if values.get("gain") is None else Interval(**values["gain"])
        return cls(bool(values["promote"]), list(values["reasons"]), gain, values.get("compared_with"))


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    gain: Interval | None,
    limits: RetrainSection,
    metric: str = "CIDEr",
    champion_version: str | None = None,
) -> Decision:
    """Promote when there is no champion, or when the gain's interval clears ``min_gain``, no guardrail
    metric drops by more than its limit and no publishing check fails more of the candidate's captions
    than the champion's by more than ``max_violation_rise`` (the metrics hold the ``publish_*`` rates
    where the checks ran); every check is a reason either way."""
    if champion is None or gain is None:
        return Decision(True, ["no champion yet: the first model becomes the champion"])
    reasons, promote = [], True
    clears = gain.low > limits.min_gain
    verb = "clears" if clears else "does not clear"
    reasons.append(f"{metric} gain {gain.text()} {verb} the margin {limits.min_gain:g}")
    promote &= clears
    for name, limit_key in GUARDRAILS:
        limit = getattr(limits, limit_key)
        drop = champion[name] - candidate[name]
        within = drop <= limit
        reasons.append(
            f"{name} {candidate[name]:.2f} vs {champion[name]:.2f} "
            f"({'within' if within else 'beyond'} the allowed drop of {limit:g})"
        )
        promote &= within
    theirs = violation_rates(champion)
    for check, rate in violation_rates(candidate).items():
        if check in theirs:
            within = rate - theirs[check] <= limits.max_violation_rise
            reasons.append(
                f"{check} violations {100 * rate:.1f}% vs {100 * theirs[check]:.1f}% of the captions "
                f"({'within' if within else 'beyond'} the allowed rise of {100 * limits.max_violation_rise:g} points)"
            )
            promote &= within
    return Decision(promote, reasons, gain, champion_version)


def comparison_figure(candidate: Mapping[str, float], champion: Mapping[str, float] | None, decision: Decision):
    """Candidate and champion side by side per metric; the title says the decision and the gain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.arange(len(COMPARED))
    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.4 if champion is not None else 0.6
    axis.bar(xs - (width / 2 if champion else 0), [candidate[m] for m in COMPARED], width, label="candidate")
    if champion is not None:
        label = f"champion v{decision.compared_with}" if decision.compared_with else "champion"
        axis.bar(xs + width / 2, [champion[m] for m in COMPARED], width, label=label)
    axis.set_xticks(xs, COMPARED)
    verdict = "promoted" if decision.promote else "champion kept"
    gain = f", CIDEr gain {decision.gain.text()}" if decision.gain is not None else ""
    axis.set(ylabel="test score", title=f"candidate vs champion: {verdict}{gain}")
    axis.legend()
    figure.tight_layout()
    return figure
