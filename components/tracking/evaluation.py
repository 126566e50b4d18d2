"""Logging an evaluation to MLflow: metrics, the table, predictions, plots, sheets and type maps."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import mlflow

from components import storage
from components.data.boxes import Box
from components.data.pipeline import load_record, read_index
from components.data.release import IMAGES_DIR
from components.evaluation.fitness import format_aspect_table, length_aspect_figure
from components.evaluation.rendering import qualitative_sheet, type_map
from components.evaluation.report import EvaluationReport


def log_evaluation(
    report: EvaluationReport,
    rows: list[dict[str, Any]],
    *,
    dataset: str,
    split: str,
    images_root: str | None,
    lang: str,
    sheets: int,
    title: str,
) -> None:
    """Everything into the active MLflow run."""
    import matplotlib.pyplot as plt

    mlflow.log_metrics({f"{split}_{k}": v for k, v in report.metrics().items()})
    mlflow.log_text(report.table(title) + "\n\n" + format_aspect_table(report.aspect_bins) + "\n", "table.md")
    lines = [json.dumps({k: _plain(v) for k, v in r.items()}, ensure_ascii=False) for r in rows]
    mlflow.log_text("\n".join(lines) + "\n", f"predictions_{split}.jsonl")
    figure = length_aspect_figure(report.aspect_bins, "characters" if lang == "zh" else "words")
    mlflow.log_figure(figure, "plots/length_vs_aspect.png")
    plt.close(figure)
    legend = [f"{k}: {' / '.join(examples)}" for k, examples in enumerate(report.types.examples)]
    mlflow.log_text("\n".join(legend) + "\n", "plots/caption_types.txt")
    with tempfile.TemporaryDirectory() as folder:
        for name, picture in pictures(report, rows, dataset, split, images_root, lang, sheets, legend):
            picture.save(Path(folder) / name)
        mlflow.log_artifacts(folder, "sheets")


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def pictures(
    report: EvaluationReport,
    rows: list[dict[str, Any]],
    dataset: str,
    split: str,
    images_root: str | None,
    lang: str,
    count: int,
    legend: list[str],
):
    """(file name, image) pairs: a qualitative sheet and a type map for each of the first ``count`` images."""
    by_image: dict[str, list[int]] = defaultdict(list)
    for position, row in enumerate(rows):
        by_image[row["image_id"]].append(position)
    chosen = list(by_image)[:count]
    index = {r["image_id"]: r["record"] for r in read_index(dataset, split) if r["image_id"] in set(chosen)}
    root = images_root or storage.join(dataset, IMAGES_DIR)
    for image_id in chosen:
        record, image = load_record(root, image_id, index[image_id])
        positions = by_image[image_id]
        boxes = [Box(rows[p]["x1"], rows[p]["y1"], rows[p]["x2"], rows[p]["y2"]) for p in positions]
        references = [str(rows[p]["reference"]) for p in positions]
        predictions = [str(rows[p]["prediction"]) for p in positions]
        yield (
            f"{image_id}_captions.png",
            qualitative_sheet(image, record.mask_boxes, boxes, references, predictions, lang, title=record.info),
        )
        yield (
            f"{image_id}_types.png",
            type_map(
                image,
                record.mask_boxes,
                boxes,
                [int(report.reference_types[p]) for p in positions],
                [int(report.generated_types[p]) for p in positions],
                lang,
                legend,
            ),
        )


def metric_value(report: EvaluationReport, name: str) -> float:
    """A metric of a report by its paper name (``CIDEr``, ``BLEU@4``, ``Div@2``) or MLflow name (``BLEU-4``)."""
    values = {**report.scores, **report.generated_diversity}
    for key in (name, name.replace("-", "@")):
        if key in values:
            return float(values[key])
    raise KeyError(f"no metric {name!r} in the evaluation (it has {', '.join(sorted(values))})")


def evaluate_and_log(
    job,
    checkpoint,
    split: str,
    *,
    run_name: str,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    beam_size: int = 1,
    limit: int | None = None,
    sheets: int = 8,
    meteor: bool = True,
) -> tuple[EvaluationReport, str]:
    """Evaluate a checkpoint on a split in its own MLflow run (nested under ``parent_run_id`` or the
    active run); log metrics, tables, predictions, plots and pictures. (report, run id)."""
    from components.evaluation.predict import evaluate_checkpoint
    from components.tracking.runs import start_run

    # The run's params describe the model evaluated, not the preset the evaluation was started from.
    evaluated = job.with_overrides(**{k: checkpoint.job[k] for k in ("model", "train") if k in checkpoint.job})
    run_id = start_run(evaluated, run_name, parent_run_id=parent_run_id, tags={"split": split, **(tags or {})})
    try:
        report, rows = evaluate_checkpoint(job, checkpoint, split, beam_size=beam_size, limit=limit, meteor=meteor)
        lang = "zh" if checkpoint.tokenizer.mode == "char" else "en"
        log_evaluation(
            report,
            rows,
            dataset=job.data.dataset,
            split=split,
            images_root=job.data.images_root,
            lang=lang,
            sheets=sheets,
            title=f"{split} ({report.images} images)",
        )
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()
    return report, run_id
