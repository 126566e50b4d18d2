"""From per-box predictions to every number and table of an evaluation (pure: no Ray, no MLflow)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.data.record.boxes import Box, aspect_ratio
from components.data.record.tokenizer import split_chars, split_words
from components.evaluation.diversity import diversity
from components.evaluation.fields import SCORED_CHANNELS, FieldSheet, diagnostic_sizes, field_accuracy
from components.evaluation.fitness import (
    AspectBin,
    CaptionTypes,
    length_aspect_correlation,
    length_by_aspect,
    type_agreement,
)
from components.evaluation.scores import caption_scores
from components.publishing.rates import publishing_rates


@dataclass
class EvaluationReport:
    images: int
    boxes: int
    scores: dict[str, float]
    generated_diversity: dict[str, float]
    human_diversity: dict[str, float]
    aspect_bins: list[AspectBin]
    length_aspect_r: float
    human_length_aspect_r: float
    types: CaptionTypes
    reference_types: np.ndarray
    generated_types: np.ndarray
    fields: dict[str, float] = field(default_factory=dict)  # field metrics (a synthetic crawl only)
    ceiling: dict[str, float] = field(default_factory=dict)  # the full oracle's scores on these boxes
    diagnostic_boxes: dict[str, int] = field(default_factory=dict)  # |V_X| per channel
    publishing: dict[str, float] = field(default_factory=dict)  # publishing rates, where checks ran

    @property
    def type_agreement(self) -> float:
        return type_agreement(self.reference_types, self.generated_types)

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow, whose names allow no '@': BLEU@4 is logged as BLEU-4."""
        values = {
            **self.scores,
            **self.generated_diversity,
            **{f"human_{k}": v for k, v in self.human_diversity.items()},
            "length_aspect_r": self.length_aspect_r,
            "human_length_aspect_r": self.human_length_aspect_r,
            "type_agreement": self.type_agreement,
            "boxes": float(self.boxes),
            "images": float(self.images),
            **self.fields,
            **{f"oracle_{k}": v for k, v in self.ceiling.items()},
            **self.publishing,
        }
        return {k.replace("@", "-"): v for k, v in values.items()}

    def table(self, title: str) -> str:
        """The paper's Table 2 columns for this model plus the human row."""
        keys = ("BLEU@1", "BLEU@4", "METEOR", "CIDEr")
        head = "| " + " | ".join([title, *keys, "Div@1", "Div@2"]) + " |"
        lines = [head, "| --- |" + " ---: |" * (len(keys) + 2)]
        lines.append(
            "| generated | "
            + " | ".join(f"{self.scores.get(k, float('nan')):.2f}" for k in keys)
            + f" | {self.generated_diversity['Div@1']:.2f} | {self.generated_diversity['Div@2']:.2f} |"
        )
        lines.append(
            "| human | "
            + " | ".join("-" for _ in keys)
            + f" | {self.human_diversity['Div@1']:.2f} | {self.human_diversity['Div@2']:.2f} |"
        )
        if self.ceiling:
            ceiling = " | ".join(f"{self.ceiling.get(k, float('nan')):.2f}" for k in keys)
            lines.append(f"| oracle (ceiling) | {ceiling} | - | - |")
        if self.fields:
            lines += ["", self.fields_table()]
        if self.publishing:
            lines += ["", self.publishing_table()]
        return "\n".join(lines)

    def publishing_table(self) -> str:
        """Each publishing rate for the most likely candidates and for the chosen captions."""
        lines = ["| publishing | most likely | chosen |", "| --- | ---: | ---: |"]
        chosen = [k for k in self.publishing if not k.startswith("publish_first_") and k != "publish_chose_other_rate"]
        for key in chosen:
            name = key.removeprefix("publish_")
            first = self.publishing.get(f"publish_first_{name}", float("nan"))
            lines.append(f"| {name.replace('_', ' ')} | {first:.3f} | {self.publishing[key]:.3f} |")
        chose = self.publishing.get("publish_chose_other_rate", float("nan"))
        return "\n".join([*lines, "", f"a less likely candidate chosen for {100 * chose:.1f}% of the boxes"])

    def fields_table(self) -> str:
        """Field accuracy per input channel, over every box and over its diagnostic boxes V_X."""
        lines = ["| input | field accuracy | on V_X | boxes in V_X |", "| --- | ---: | ---: | ---: |"]
        for channel in SCORED_CHANNELS:
            every = self.fields.get(f"field_accuracy_{channel}", float("nan"))
            diagnostic = self.fields.get(f"field_accuracy_{channel}_diag", float("nan"))
            size = self.diagnostic_boxes.get(channel, 0)
            lines.append(f"| {channel} | {every:.3f} | {diagnostic:.3f} | {size} |")
        roles = sorted(k.removeprefix("role_accuracy_") for k in self.fields if k.startswith("role_accuracy_"))
        lines += ["", "| part | accuracy |", "| --- | ---: |"]
        lines += [f"| {role} | {self.fields[f'role_accuracy_{role}']:.3f} |" for role in roles]
        return "\n".join(lines)


def _length(text: str, mode: str) -> int:
    return len(split_chars(text) if mode == "char" else split_words(text))


def evaluate_rows(
    rows: Sequence[dict[str, Any]],
    mode: str = "char",
    meteor: bool = True,
    clusters: int = 4,
    seed: int = 0,
    fields: FieldSheet | None = None,
    checks: Sequence[str] = (),
) -> EvaluationReport:
    """``rows``: one per box with image_id, box, prediction, reference, x1..y2, width, height, and
    ``verdict`` (JSON) where the publishing ``checks`` chose the predictions. ``fields``: the split's
    field sheet (a synthetic crawl's), for field accuracy and the ceiling."""
    keys = [f"{r['image_id']}#{r['box']}" for r in rows]
    references = {k: str(r["reference"]) for k, r in zip(keys, rows, strict=True)}
    predictions = {k: str(r["prediction"]) for k, r in zip(keys, rows, strict=True)}
    generated_paragraphs: dict[str, list[str]] = defaultdict(list)
    human_paragraphs: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        generated_paragraphs[r["image_id"]].append(str(r["prediction"]))
        human_paragraphs[r["image_id"]].append(str(r["reference"]))
    aspects = [aspect_ratio(Box(r["x1"], r["y1"], r["x2"], r["y2"]), (int(r["width"]), int(r["height"]))) for r in rows]
    generated_lengths = [_length(str(r["prediction"]), mode) for r in rows]
    reference_lengths = [_length(str(r["reference"]), mode) for r in rows]
    reference_texts = [str(r["reference"]) for r in rows]
    types = CaptionTypes(mode, clusters=min(clusters, max(2, len(set(reference_texts)))), seed=seed)
    types.fit(reference_texts)
    return EvaluationReport(
        images=len(human_paragraphs),
        boxes=len(rows),
        scores=caption_scores(references, predictions, mode, meteor=meteor),
        generated_diversity=diversity(generated_paragraphs, mode),
        human_diversity=diversity(human_paragraphs, mode),
        aspect_bins=length_by_aspect(aspects, generated_lengths, reference_lengths),
        length_aspect_r=length_aspect_correlation(aspects, generated_lengths),
        human_length_aspect_r=length_aspect_correlation(aspects, reference_lengths),
        types=types,
        reference_types=types.assign(reference_texts),
        generated_types=types.assign([str(r["prediction"]) for r in rows]),
        **(_field_figures(fields, references, predictions, mode, meteor) if fields is not None else {}),
        publishing=publishing_rates([json.loads(r["verdict"]) for r in rows], checks) if checks and rows else {},
    )


def _field_figures(
    sheet: FieldSheet, references: dict[str, str], predictions: dict[str, str], mode: str, meteor: bool
) -> dict[str, Any]:
    """Field accuracy, and the full oracle scored on the same boxes as the model (its ceiling)."""
    covered = sheet.covering(predictions)
    if not covered.boxes:
        return {}
    ceiling = caption_scores({k: references[k] for k in covered.ceiling}, covered.ceiling, mode, meteor=meteor)
    return {
        "fields": field_accuracy(covered, predictions),
        "ceiling": ceiling,
        "diagnostic_boxes": diagnostic_sizes(covered),
    }
