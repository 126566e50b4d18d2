"""One ingest in one MLflow run: the counts per stage and reason, OCR time, pictures of the OCR'd
images with what became of each text, and the new dataset version as an MLflow dataset."""

from __future__ import annotations

import json

import numpy as np

from components.cluster import init_ray
from components.config import JobConfig
from components.data.ingest.partitions import IngestResult, Plan, added_table, plan_ingest, run_ingest
from components.data.pictures.preview import ocr_tile, sheet_of
from components.data.record.boxes import Box
from components.data.record.images import open_image
from components.metric_names import metric_key, named
from components.redaction import redact
from components.tracking.runs import TrackedRun, job_run, new_run_name, work_key


def tracked_ingest(job: JobConfig, crawl_root: str, *, only: str | None = None, reingest: bool = False) -> IngestResult:
    """Ingest ``crawl_root``'s new partitions into ``job.data.dataset`` inside an MLflow run. What to
    ingest is decided first: with nothing new, neither Ray nor an MLflow run is started."""
    plan = plan_ingest(job.data.dataset, crawl_root, job.ingest, only=only, reingest=reingest)
    if not plan.partitions:
        return run_ingest(plan, job.ingest)
    return ingest_planned(job, plan, crawl_root)


def ingest_planned(
    job: JobConfig, plan: Plan, crawl_root: str, *, parent_run_id: str | None = None, commit: bool = True
) -> IngestResult:
    """A planned ingest in its own MLflow run (nested under ``parent_run_id``); without ``commit`` the
    new version is left for the caller to publish (``commit_ingest``)."""
    tags = {"crawl_root": redact(crawl_root)}
    init_ray(job)
    work = work_key("ingest", job.data.dataset, sorted(plan.keys.items()))  # these partitions into this dataset
    with job_run(
        job.with_overrides(task="ingest"), new_run_name("ingest"), parent_run_id, tags=tags, work_key=work
    ) as run:
        result = run_ingest(plan, job.ingest, commit=commit)
        log_ingest(run, result)
    return result


def log_ingest(run: TrackedRun, result: IngestResult) -> None:
    """Everything about an ingest into its run."""
    metrics = named("stage", {k: float(v) for k, v in result.stages.items()})  # stage/lines, stage/added, ...
    metrics.update(named("rejected", {k: float(v) for k, v in result.rejected.items()}))
    metrics.update(named("texts", {k: float(v) for k, v in result.texts.items()}))
    metrics[metric_key("texts", "oov_share")] = result.oov_share
    metrics.update(named("fluency", {k: v for k, v in result.fluency.items() if np.isfinite(v)}))
    if result.ocr_seconds:
        metrics[metric_key("ocr", "seconds_per_image")] = float(np.mean(result.ocr_seconds))
        metrics[metric_key("ocr", "seconds_p95")] = float(np.quantile(result.ocr_seconds, 0.95))
    run.log_metrics(metrics)
    run.set_tags(
        {
            "previous_version": result.previous_version,
            "partitions": ",".join(result.partitions) or "none",
            "ingest_outcome": ("added" if result.committed else "checked") if result.new_records else "nothing_added",
        }
    )
    summary = result.summary()
    if result.partitions and result.committed:
        summary += "\n\n" + added_table(result)
    run.log_text(summary + "\n", "ingest/summary.txt")
    run.log_text("\n".join(result.messages) + "\n", "ingest/rejections.txt")
    run.log_text(json.dumps(result.partitions, indent=1) + "\n", "ingest/partition_keys.json")
    if result.examples:
        run.log_image(examples_sheet(result), "ingest/examples.png")
    run.log_dataset(result.dataset, result.version, "ingest")


def examples_sheet(result: IngestResult):
    """The example images at their crawled size, every OCR box drawn: kept green, rejected red with
    the reason (the image's own fate in its title)."""
    tiles = []
    for outcome in result.examples:
        image = open_image(result.locations[outcome["partition"]], outcome["image"]).image
        fates = [(Box(*box), text, reason) for box, text, reason in json.loads(outcome["fates"])]
        fate = "added" if outcome["status"] == "kept" else outcome.get("reason", "")
        tiles.append(ocr_tile(image, fates, f"{outcome['product_id']}: {fate}"))
    return sheet_of(tiles)
