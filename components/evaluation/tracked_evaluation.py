"""An evaluation in its own MLflow run: metrics, the table, predictions, plots, sheets and type maps."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image

from components.config import JobConfig
from components.data.pipeline.stream import load_record
from components.data.record.boxes import Box
from components.data.release.dataset import PreparedDataset
from components.data.release.table import head_rows
from components.data.transforms.masking import box_pixel_bounds
from components.evaluation.fitness import format_aspect_table, length_aspect_figure
from components.evaluation.oracle import dataset_field_sheet
from components.evaluation.predict import evaluate_checkpoint
from components.evaluation.rendering import failure_sheet, qualitative_sheet, type_map
from components.evaluation.report import EvaluationReport
from components.metric_names import named
from components.model.checkpoint import LoadedCheckpoint
from components.publishing.records import published_image
from components.tracking.runs import TrackedRun, dataset_name, job_run, work_key
from components.tracking.sources import logged_model_id


class Evaluated(NamedTuple):
    report: EvaluationReport
    run_id: str  # the evaluation's MLflow run
    rows: list[dict[str, Any]]  # every box: image id, box, reference, prediction


def evaluate_and_log(
    job: JobConfig,
    dataset: PreparedDataset,
    checkpoint: LoadedCheckpoint,
    split: str,
    *,
    run_name: str,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    beam_size: int = 1,
    limit: int | None = None,
    sheets: int = 8,
    meteor: bool = True,
) -> Evaluated:
    """Evaluate a checkpoint on a split of ``dataset`` in its own MLflow run (nested under
    ``parent_run_id``); log metrics, tables, predictions, plots and pictures. Ray must be up."""
    # The run's params are the evaluation's own: the model evaluated (not the preset the evaluation was
    # started from), the data, the publishing checks, the split and how it decoded; not the training's.
    model = {"model": checkpoint.job["model"]} if "model" in checkpoint.job else {}
    evaluated = job.with_overrides(task="evaluate", **model)
    tags = {"task": "evaluate", "split": split, **(tags or {})}  # not the task of the flow that asked for it
    work = work_key(
        "evaluate", tags.get("model_source", run_name), dataset.version, split, limit, beam_size, parent_run_id
    )
    with job_run(evaluated, run_name, parent_run_id=parent_run_id, tags=tags, work_key=work) as run:
        run.log_params({"eval.split": split, "eval.images": limit or "all", "eval.beam_size": beam_size})
        run.log_dataset(dataset.location, dataset.version, "evaluation")
        index = head_rows(dataset.table, split, limit)
        fields = dataset_field_sheet(dataset.table, index)  # None without a truth sidecar
        report, rows = evaluate_checkpoint(
            job, dataset, checkpoint, split, index, beam_size=beam_size, meteor=meteor, fields=fields
        )
        lang = "zh" if checkpoint.tokenizer.mode == "char" else "en"
        model_id = logged_model_id(tags.get("model_source"), job.tracking.tracking_uri)
        if model_id is not None:  # the run links the model it scored; the model's page lists the scores
            run.log_model_input(model_id)
        scored = (model_id, (dataset_name(dataset.location), dataset.version))
        title = f"{split} ({report.images} images)"
        log_evaluation(run, report, rows, split=split, lang=lang, title=title, scored=scored)
        log_pictures(run, pictures(report, rows, index, dataset.images_root, lang, sheets))
        if report.publishing:
            failures = publishing_failures(rows, index, dataset.images_root, lang, job.publish.min_font_fraction)
            run.log_image(failures, "plots/publishing_failures.png")
    return Evaluated(report, run.run_id, rows)


def log_evaluation(
    run: TrackedRun,
    report: EvaluationReport,
    rows: list[dict[str, Any]],
    *,
    split: str,
    lang: str,
    title: str,
    scored: tuple[str | None, tuple[str, str]] | None = None,
) -> None:
    """Metrics, the table, every prediction and the length/aspect plot into ``run``. The scores and the
    predictions are also MLflow tables (the UI sorts and filters them, and compares them across runs)."""
    model_id, dataset = scored if scored is not None and scored[0] else (None, None)  # the model scored, on what
    run.log_metrics(named(split, report.metrics()), model_id=model_id, dataset=dataset)  # val/CIDEr, ...
    run.log_text(report.table(title) + "\n\n" + format_aspect_table(report.aspect_bins) + "\n", "table.md")
    plain = [{k: _plain(k, v) for k, v in r.items()} for r in rows]
    run.log_text("\n".join(json.dumps(r, ensure_ascii=False) for r in plain) + "\n", f"predictions_{split}.jsonl")
    run.log_table({"metric": list(report.metrics()), "value": list(report.metrics().values())}, f"scores_{split}.json")
    if plain:
        run.log_table({key: [r.get(key) for r in plain] for key in plain[0]}, f"predictions_{split}.json")
    run.log_figure(
        length_aspect_figure(report.aspect_bins, "characters" if lang == "zh" else "words"),
        "plots/length_vs_aspect.png",
    )
    run.log_text("\n".join(type_legend(report)) + "\n", "plots/caption_types.txt")


def log_pictures(run: TrackedRun, named_pictures: Iterable[tuple[str, Image.Image]]) -> None:
    """(file name, picture) pairs into ``run``'s ``sheets/``."""
    with tempfile.TemporaryDirectory() as folder:
        for name, picture in named_pictures:
            picture.save(Path(folder) / name)
        run.log_folder(folder, "sheets")


def type_legend(report: EvaluationReport) -> list[str]:
    return [f"{k}: {' / '.join(examples)}" for k, examples in enumerate(report.types.examples)]


def _plain(key: str, value):
    """A prediction row's value as plain JSON: numpy scalars as numbers, the verdict as an object."""
    if key == "verdict":
        return json.loads(str(value))
    return value.item() if hasattr(value, "item") else value


def pictures(
    report: EvaluationReport,
    rows: list[dict[str, Any]],
    index: list[dict[str, str]],
    images_root: str,
    lang: str,
    count: int,
) -> Iterator[tuple[str, Image.Image]]:
    """(file name, image) pairs: a qualitative sheet and a type map for each of the first ``count``
    images. The records come from the index the prediction read; only these images are read again,
    at their stored resolution (the pipeline's copies are shrunk to the model's input)."""
    by_image: dict[str, list[int]] = defaultdict(list)
    for position, row in enumerate(rows):
        by_image[row["image_id"]].append(position)
    chosen = list(by_image)[:count]
    records = {r["image_id"]: r["record"] for r in index}
    legend = type_legend(report)
    for image_id in chosen:
        record, image = load_record(images_root, image_id, records[image_id])
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


def publishing_failures(
    rows: list[dict[str, Any]],
    index: list[dict[str, str]],
    images_root: str,
    lang: str,
    min_font_fraction: float,
    count: int = 24,
) -> Image.Image:
    """The first ``count`` chosen captions that fail a publishing check, each cropped from its image as
    published (old text removed, the chosen captions set where legible) beside the checks it failed."""
    failing: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if json.loads(row["verdict"])["failed"] and sum(map(len, failing.values())) < count:
            failing[row["image_id"]].append(row)
    records = {r["image_id"]: r["record"] for r in index}
    cells = []
    for image_id, failed in failing.items():
        record, image = load_record(images_root, image_id, records[image_id])
        boxes = [r for r in rows if r["image_id"] == image_id]
        places = [Box(r["x1"], r["y1"], r["x2"], r["y2"]) for r in boxes]
        published = published_image(image, places, record.info, [r["prediction"] for r in boxes], min_font_fraction)
        for row in failed:
            x1, y1, x2, y2 = box_pixel_bounds(Box(row["x1"], row["y1"], row["x2"], row["y2"]), *published.size)
            crop = published.crop((max(0, x1 - 4), max(0, y1 - 4), x2 + 5, y2 + 5))
            cells.append((crop, failure_label(image_id, row)))
    return failure_sheet(cells, lang)


def failure_label(image_id: str, row: dict[str, Any]) -> str:
    """Two lines: the image, box and caption; each failed check with its reason."""
    verdict = json.loads(row["verdict"])
    reasons = "; ".join(f"{check}: {verdict['reasons'].get(check, '')}" for check in verdict["failed"])
    return f"{image_id} box {row['box']}: {verdict['caption']} (candidate {verdict['rank'] + 1})\n{reasons}"


def metric_value(report: EvaluationReport, name: str) -> float:
    """A metric of a report by its paper name (``CIDEr``, ``BLEU@4``, ``Div@2``) or MLflow name (``BLEU-4``)."""
    values = {**report.scores, **report.generated_diversity}
    for key in (name, name.replace("-", "@")):
        if key in values:
            return float(values[key])
    raise KeyError(f"no metric {name!r} in the evaluation (it has {', '.join(sorted(values))})")
