"""The data gate: what an ingest brought in must look like the data the model was trained on before
any training starts (pure: figures from an ``IngestResult``, reasons from the limits).

A crawl that repeats a val or test image (its product id or its bytes) fails: the fixed splits
must never leak into training, and such a crawl is likely mislabelled. A near-duplicate by the
released caption-overlap rule is dropped by dedup like any other, counted, and allowed: a small
lexicon of product phrases makes them common without any leak.

A failed gate names every reason, e.g. ``rejection rate 0.72 above 0.50 (bad_json 30, too_few_captions 6)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from components.config import RetrainSection
from components.data.ingest.partitions import IngestResult
from components.data.record.tokenizer import split_chars
from components.metric_names import named

DEDUP_REASONS = ("duplicate_product", "duplicate_image", "near_duplicate")  # normal in a re-crawl, not bad input


@dataclass(frozen=True)
class DataFigures:
    """What the gate looks at, from one ingest."""

    lines: int  # product lines read
    new_images: int  # usable new training images
    bad_input: dict[str, int]  # reason -> product lines lost to it (dedup excluded)
    mean_caption_chars: float  # of the new captions (0 without any)
    oov_share: float  # new caption characters outside the vocabulary, after it grew by the frequent ones
    overlap: list[str] = field(default_factory=list)  # val/test images the crawl repeats (same id or bytes)
    near_fixed: list[str] = field(default_factory=list)  # val/test images it nearly repeats (dropped, allowed)

    @property
    def rejection_rate(self) -> float:
        return sum(self.bad_input.values()) / self.lines if self.lines else 0.0

    def metrics(self) -> dict[str, float]:
        """The figures as the retrain run logs them (``gate/new_images``, ...)."""
        figures = {
            "lines": float(self.lines),
            "new_images": float(self.new_images),
            "rejection_rate": self.rejection_rate,
            "mean_caption_chars": self.mean_caption_chars,
            "oov_share": self.oov_share,
            "fixed_split_overlap": float(len(self.overlap)),
            "fixed_split_near_duplicates": float(len(self.near_fixed)),
        }
        return named("gate", figures)


def data_figures(result: IngestResult, fixed_ids: Iterable[str]) -> DataFigures:
    """The gate's figures for an ingest; ``fixed_ids`` are the val and test images."""
    fixed = set(fixed_ids)
    lengths = [len(split_chars(c)) for r in result.new_records for c in r.captions]
    repeated = [(reason, existing) for reason, existing in result.duplicates_of.values() if existing in fixed]
    return DataFigures(
        lines=result.stages["lines"],
        new_images=len(result.new_records),
        bad_input={k: v for k, v in sorted(result.rejected.items()) if k not in DEDUP_REASONS and v},
        mean_caption_chars=sum(lengths) / len(lengths) if lengths else 0.0,
        oov_share=result.oov_share,
        overlap=sorted({existing for reason, existing in repeated if reason != "near_duplicate"}),
        near_fixed=sorted({existing for reason, existing in repeated if reason == "near_duplicate"}),
    )


def gate_reasons(figures: DataFigures, limits: RetrainSection) -> list[str]:
    """Why the new data must not be trained on; empty when it passes."""
    reasons = []
    if figures.new_images < limits.min_new_images:
        reasons.append(f"{figures.new_images} new usable images, fewer than {limits.min_new_images}")
    if figures.rejection_rate > limits.max_rejection_rate:
        counts = ", ".join(f"{k} {v}" for k, v in figures.bad_input.items())
        reasons.append(
            f"rejection rate {figures.rejection_rate:.2f} above {limits.max_rejection_rate:.2f} "
            f"({counts} of {figures.lines} lines)"
        )
    low, high = limits.caption_chars
    if figures.new_images and not low <= figures.mean_caption_chars <= high:
        reasons.append(f"mean caption length {figures.mean_caption_chars:.2f} characters outside [{low:g}, {high:g}]")
    if figures.oov_share > limits.max_oov_share:
        reasons.append(
            f"{100 * figures.oov_share:.2f}% of the new caption characters stay outside the vocabulary "
            f"after it grew by those seen at least ingest.vocabulary_min_count times (at most "
            f"{100 * limits.max_oov_share:.2f}%)"
        )
    if figures.overlap:
        shown = ", ".join(figures.overlap[:5]) + (" ..." if len(figures.overlap) > 5 else "")
        reasons.append(f"{len(figures.overlap)} images repeat the fixed val/test images ({shown})")
    return reasons
