"""One tracked fit, shared by pre-training, fine-tuning, the Tune trial and the ablation.

start the MLflow run (config as params)  ->  Ray up  ->  fit on Ray Train  ->  log the final
checkpoint, the plots and the skipped records  ->  end the run FINISHED (or FAILED)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray

from components import storage
from components.cluster import init_ray
from components.config import JobConfig, TrainSection
from components.data.release.dataset import PreparedDataset
from components.errors import ConfigError
from components.evaluation.fields import FieldSheet
from components.metric_names import TRAIN, VAL_SUBSET, metric_key
from components.model.backbone import resolve_norm
from components.model.checkpoint import CONFIG_FILE, load_checkpoint
from components.tracking.pyfunc import log_checkpoint_model
from components.tracking.runs import TrackedRun, close_run, job_run, new_run_name, run_of_ray_run
from components.tracking.sources import logged_model_id
from components.training.curriculum import curriculum_step, level_probabilities
from components.training.driver import fit

log = logging.getLogger(__name__)
LOSSES = (
    metric_key(TRAIN, "loss_generation"),
    metric_key(TRAIN, "loss_matching"),
    metric_key(VAL_SUBSET, "loss_generation"),
)


@dataclass
class FitOutcome:
    run_id: str  # the MLflow run
    result: Any  # Ray Train's Result: metrics and the last checkpoint
    skipped: dict[str, Any]  # records skipped by reason
    model_uri: str | None = None  # the run's logged model, when it logged one

    def final_weights(self) -> dict:
        """The last checkpoint's model weights."""
        with self.result.checkpoint.as_directory() as folder:
            return load_checkpoint(folder, with_training_state=False).model_state


def tracked_fit(
    job: JobConfig,
    dataset: PreparedDataset,
    run_name: str,
    *,
    ray_run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    init_weights: dict | None = None,
    extra_callbacks: Callable[[str], Sequence[Any]] | None = None,
    log_model: bool = True,
    fields: FieldSheet | None = None,
    params: dict[str, str] | None = None,
) -> FitOutcome:
    """Train ``job`` on the prepared ``dataset`` (the version it logs is the one it reads) in its own
    MLflow run ``run_name`` (nested under ``parent_run_id``).

    ``ray_run_name`` names the run in Ray's storage (an existing one resumes); default ``run_name``.
    ``init_weights``: a state dict to warm-start from (fine-tuning), sent to the workers through the
    object store. ``extra_callbacks(run_id)``: more Ray Train callbacks beside the MLflow one (Tune's).
    ``log_model``: the final checkpoint is logged as the run's pyfunc model (else as loose files).
    ``fields``: the validation subset's field sheet (``evaluation.oracle.validation_field_sheet``, built
    where the truth may be read); validation then reports field accuracy per input. ``params``: more
    params beside the job's (e.g. ``driver.vocabulary_params``).
    """
    ray_run_name = ray_run_name or run_name
    job = with_resolved_backbone(job)
    resumes_from = check_resumable(job, ray_run_name)
    init_ray(job)  # before MLflow: a cluster that cannot start leaves no run behind
    tags = {"ray_run_name": ray_run_name, **(tags or {})}
    resume_run_id = earlier_run(job, ray_run_name, resumes_from)
    with job_run(job, run_name, parent_run_id, tags=tags, resume_run_id=resume_run_id) as run:
        run.log_dataset(dataset.location, dataset.version, "training")
        started_from = started_from_model(job)
        if started_from is not None and resume_run_id is None:  # (a resumed run has it already)
            run.log_model_input(started_from)  # the UI links the two models
        if params:
            run.log_params(params)
        weights = ray.put(init_weights) if init_weights is not None else None  # reaches workers on any node
        callbacks = tuple(extra_callbacks(run.run_id)) if extra_callbacks else ()
        result, skipped = fit(job, dataset, ray_run_name, run.run_id, weights, callbacks, fields)
        model_uri = log_training(run, job, dataset, result, skipped, log_model)
    return FitOutcome(run.run_id, result, skipped, model_uri)


def started_from_model(job: JobConfig) -> str | None:
    """The logged model a fine-tuning starts from, when ``init_from`` names one in this store (a
    checkpoint folder names none; an ablation's ``init_from`` is a label, its weights come directly)."""
    try:
        return logged_model_id(job.init_from, job.tracking.tracking_uri)
    except ConfigError:
        return None


def with_resolved_backbone(job: JobConfig) -> JobConfig:
    """``model.backbone_norm`` decided once, here on the driver, so that the run's params and its
    checkpoints say which normalisation the backbone trained with."""
    if not job.model.use_image:
        return job
    norm = resolve_norm(job.model.backbone_norm, job.model.backbone, job.model.backbone_weights)
    return job.with_overrides(model={"backbone_norm": norm})


RESUME_IRRELEVANT = ("backbone_weights",)  # where the initial weights came from: a resume has its own


def check_resumable(job: JobConfig, ray_run_name: str) -> str | None:
    """A run name with checkpoints resumes them (the latest one's name is returned): its model must
    be the one they hold. Another shape is a ``ConfigError`` naming the keys that differ, before Ray
    starts (not a ``state_dict`` error from every worker after it)."""
    folder = storage.join(job.ray.storage_path, ray_run_name)
    saved = sorted(e.name for e in storage.list_folder(folder) if e.is_folder and e.name.startswith("checkpoint_"))
    if not saved:
        return None
    before = json.loads(storage.read_bytes(storage.join(folder, saved[-1], CONFIG_FILE))).get("model", {})
    now = job.model.as_dict()
    differ = [
        f"model.{key}: {before.get(key)!r} in {saved[-1]}, {now.get(key)!r} now"
        for key in sorted(set(before) | set(now))
        if key not in RESUME_IRRELEVANT and before.get(key) != now.get(key)
    ]
    if differ:
        raise ConfigError(
            "ray.run_name",
            f"{ray_run_name} resumes checkpoints of another model ({'; '.join(differ)}): "
            "train under a new ray.run_name, or with the model settings of those checkpoints",
        )
    return saved[-1]


def earlier_run(job: JobConfig, ray_run_name: str, resumes_from: str | None) -> str | None:
    """The MLflow run a resumed training continues: the one that trained ``ray_run_name`` before,
    also when a killed driver left it RUNNING (then tagged ``interrupted``). Without a checkpoint to
    resume (``resumes_from`` None), training starts over in a new run, and a run left RUNNING is closed
    as KILLED (tag ``interrupted``) instead of staying a ghost."""
    found = run_of_ray_run(job.tracking, ray_run_name)
    if found is None:
        return None
    run_id, status = found
    if resumes_from is not None:
        log.info("resuming MLflow run %s of %s from %s (it was %s)", run_id, ray_run_name, resumes_from, status)
        if status == "RUNNING":
            note = f"its driver stopped without ending the run; resumed from {resumes_from}"
            TrackedRun(job.tracking.tracking_uri, run_id).set_tag("interrupted", note)
        return run_id
    if status == "RUNNING":
        note = "its driver stopped before the first checkpoint; trained again"
        close_run(job.tracking.tracking_uri, run_id, "KILLED", {"interrupted": note})
    return None


def default_run_name(job: JobConfig) -> str:
    """``ray.run_name`` when set (it resumes that run), else a new name for the task."""
    return job.ray.run_name or new_run_name(job.task)


def log_training(
    run: TrackedRun, job: JobConfig, dataset: PreparedDataset, result, skipped: dict[str, Any], log_model: bool = True
) -> str | None:
    """After ``fit``: the final checkpoint (as the run's pyfunc model with ``log_model``, its input
    example the dataset's first image), the plots and the skipped records, into ``run``; the logged
    model's URI."""
    model_uri = None
    if result.checkpoint is not None:
        run.log_checkpoint(result.checkpoint, files=not log_model)
        if log_model:
            with result.checkpoint.as_directory() as folder:
                model_uri = log_checkpoint_model(run, folder, dataset, job.task)
    run.log_figure(curriculum_figure(job.train), "plots/curriculum.png")
    run.log_figure(run.metric_history_figure(LOSSES, "loss", "training losses"), "plots/losses.png")
    run.log_skipped_records(skipped)
    return model_uri


def curriculum_figure(train: TrainSection):
    """The probability of each negative level against the global step, as the run's step runner draws
    them (logged as ``negatives/another_image``, ``negatives/another_box``, ``negatives/neighbour``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedule = train.negatives
    xs = sorted({max(1, round(train.steps * i / 400)) for i in range(401)})
    probabilities = [level_probabilities(schedule, curriculum_step(train, x)) for x in xs]
    figure, axis = plt.subplots(figsize=(7, 4))
    labels = ("level I: a caption of another image", "level II: another box's", "level III: a neighbour's")
    for level, label in enumerate(labels):
        axis.plot(xs, [p[level] for p in probabilities], label=label)
    axis.set(
        xlabel="global step",
        ylabel="probability of the negative level",
        ylim=(0, 1.02),
        title=f"caption-matching negatives ({schedule})",
    )
    axis.legend()
    figure.tight_layout()
    return figure
