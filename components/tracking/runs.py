"""MLflow runs: the thin adapter every flow records through.

Starting a run with a job's resolved config as params, ending it FINISHED or FAILED, naming runs,
finding the newest run of a task, and a few logging helpers (a metric's history as a plot, skipped
records, files). It knows nothing of training, evaluation or serving.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.config import JobConfig, TrackingSection
from components.errors import ConfigError
from components.model.checkpoint import CHECKPOINT_ARTIFACT, inference_files
from components.redaction import redact
from components.tracking.callback import checkpoint_uri

log = logging.getLogger(__name__)


def new_run_name(task: str) -> str:
    """A unique run name (MLflow's and Ray's): ``pretrain-20261123-120000-1a2b3c``."""
    return f"{task}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


# Config sections that are not about what a run of this kind does stay out of its params (the whole
# config is still in its config/job.json): a training run has no sweep or ingest settings to compare.
UNLOGGED_SECTIONS = {
    "tune": ("ingest", "retrain"),
    "ingest": ("model", "train", "tune", "retrain"),
    "retrain": ("tune",),
}
DEFAULT_UNLOGGED = ("tune", "ingest", "retrain")
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")  # the UI's model-training layout


def start_run(
    job: JobConfig,
    run_name: str,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    resume_run_id: str | None = None,
) -> str:
    """Start the job's MLflow run (the active run of this process) with the resolved config.

    With a run already active (the ablation's parent) the new run is nested under it. The run's kind
    is its ``task`` tag (the job's task unless ``tags`` says otherwise, e.g. ``tune``).
    ``resume_run_id`` continues that run instead (a resumed training): params it has keep their
    values, and the ones that changed are named in the tag ``changed_on_resume``.
    """
    mlflow.set_tracking_uri(job.tracking.tracking_uri)
    mlflow.set_experiment(experiment_id=ensure_experiment(job.tracking.tracking_uri, job.tracking.experiment))
    tags = {"task": job.task, **(tags or {})}
    before = MlflowClient(job.tracking.tracking_uri).get_run(resume_run_id).data.params if resume_run_id else {}
    run = mlflow.start_run(
        run_id=resume_run_id,
        run_name=None if resume_run_id else run_name,
        parent_run_id=None if resume_run_id else parent_run_id,
        nested=mlflow.active_run() is not None,
        log_system_metrics=job.tracking.system_metrics,
        tags=tags,
    )
    unlogged = UNLOGGED_SECTIONS.get(tags["task"], DEFAULT_UNLOGGED)
    params = {k: redact(str(v))[:500] for k, v in job.flat().items() if k.split(".")[0] not in unlogged}
    changed = sorted(k for k, v in params.items() if k in before and before[k] != v)
    if changed:
        mlflow.set_tag("changed_on_resume", ", ".join(changed)[:5000])
    mlflow.log_params({k: v for k, v in params.items() if k not in changed})
    mlflow.log_text(redact(json.dumps(job.as_dict(), indent=2, default=list)), "config/job.json")
    return run.info.run_id


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """The experiment's id, created if needed: in the model-training layout and, for a sqlite store,
    with its artifacts beside the database file (MLflow's default, ``./mlruns`` of whatever directory
    the process runs in, is lost with a ``ray job submit`` working directory)."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(
                name, artifact_location=local_artifact_root(tracking_uri, name), tags=dict([EXPERIMENT_KIND])
            )
        except MlflowException:  # another process created it first (the trials of a sweep)
            found = client.get_experiment_by_name(name)
    if found.tags.get(EXPERIMENT_KIND[0]) is None:
        client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
    return found.experiment_id


def local_artifact_root(tracking_uri: str, experiment: str) -> str | None:
    """``<database folder>/mlartifacts/<experiment>`` for a ``sqlite:///`` store; None (the server's
    or MLflow's default) for anything else."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    folder = Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("_") or "experiment"
    return str(folder / "mlartifacts" / slug)


@contextlib.contextmanager
def finish_run(run_id: str) -> Iterator[dict[str, Any]]:
    """End the active MLflow run as FINISHED, or FAILED if the body raises (the error, redacted, in
    its tag ``error``, for the UI's run page); print where to look.

    The body may put its Ray Train ``result`` into the yielded dict to have its last checkpoint named.
    """
    outcome: dict[str, Any] = {}
    try:
        yield outcome
    except BaseException as error:
        with contextlib.suppress(Exception):  # the run's own error is the one to raise
            mlflow.set_tag("error", redact(f"{type(error).__name__}: {error}")[:5000])
        mlflow.end_run(status="FAILED")
        raise
    result = outcome.get("result")
    mlflow.end_run()
    line = f"MLflow run {run_id} finished"
    if result is not None:
        line += f"; last checkpoint: {checkpoint_uri(result.checkpoint) if result.checkpoint else 'none'}"
    print(line)
    print(f"compare runs: mlflow ui --backend-store-uri {redact(mlflow.get_tracking_uri())}")


def run_of_ray_run(tracking: TrackingSection, ray_run_name: str) -> tuple[str, str] | None:
    """(run id, status) of the MLflow run that trained the Ray Train run ``ray_run_name`` before, if
    any: a resumed training continues it (also one a killed driver left RUNNING)."""
    client = MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        return None
    found = client.search_runs(
        [experiment.experiment_id],
        f"tags.ray_run_name = '{ray_run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return (found[0].info.run_id, found[0].info.status) if found else None


def latest_run_id(tracking_uri: str, experiment: str, task: str = "pretrain", key: str = "init_from") -> str:
    """The newest FINISHED run of ``task`` in ``experiment`` (``latest``); ``ConfigError`` naming ``key`` if none."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = (
        []
        if found is None
        else client.search_runs(
            [found.experiment_id],
            f"tags.task = '{task}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    )
    if not runs:
        raise ConfigError(key, f"no finished {task} run in experiment '{experiment}' at {redact(tracking_uri)}")
    return runs[0].info.run_id


# MLflow checks whether a dataset (experiment, name, digest) exists, then inserts it: two runs that
# log a new version at once (the trials of a sweep) both insert, and the second breaks the unique key.
# The failed insert rolls back whole, so logging again finds the first run's row and succeeds.
DATASET_ATTEMPTS = 3
UNIQUE_VIOLATION = re.compile(r"unique constraint|duplicate key|IntegrityError|UniqueViolation", re.IGNORECASE)


def lost_insert_race(error: MlflowException) -> bool:
    """Whether the tracking store refused an insert for a key another writer had just inserted
    (sqlite's, PostgreSQL's and MySQL's wording, directly or through a tracking server)."""
    return bool(UNIQUE_VIOLATION.search(str(error.message)))


def log_dataset(location: str, version: str, context: str) -> None:
    """A dataset version as an input of the active run: an MLflow dataset whose source is the
    dataset's location and whose digest is its version (``components.data.index.dataset_version``),
    and the tag ``data_version``. ``context``: training, evaluation, ingest."""
    with warnings.catch_warnings():  # a local path resolves to two identical local sources
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(redact(location))
    name = location.rstrip("/").rsplit("/", 1)[-1]
    dataset = MetaDataset(source, name=name, digest=version)
    for attempt in range(1, DATASET_ATTEMPTS + 1):
        try:
            mlflow.log_input(dataset, context=context)
            break
        except MlflowException as error:
            if attempt == DATASET_ATTEMPTS or not lost_insert_race(error):
                raise
            log.info("dataset %s@%s was logged by another run at the same moment; logging it again", name, version)
    mlflow.set_tag("data_version", version)


def log_files(paths: Iterable[Path], artifact_path: str) -> None:
    """Files into a folder of the active run's artifacts."""
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path)


def log_checkpoint(checkpoint, files: bool = True) -> None:
    """A Ray Train checkpoint's location as the active run's tag ``checkpoint_uri`` and, with
    ``files``, its weights, config and vocabulary as the ``checkpoint`` artifact (enough to
    fine-tune, evaluate or serve; the optimiser state, twice the weights, stays in Ray's storage for
    resuming)."""
    if files:
        with checkpoint.as_directory() as folder:
            log_files(inference_files(folder), CHECKPOINT_ARTIFACT)
    mlflow.set_tag("checkpoint_uri", checkpoint_uri(checkpoint))


def log_figure(figure, name: str) -> None:
    """A matplotlib figure as a PNG artifact of the active run, then closed."""
    import matplotlib.pyplot as plt

    mlflow.log_figure(figure, name)
    plt.close(figure)


def log_skipped_records(rejections: dict[str, Any]) -> None:
    """A tally's report (``{"counts": {reason: n}, "examples": [...]}``) as metrics and a text file."""
    counts = rejections.get("counts", {})
    mlflow.log_metric("skipped_records", float(sum(counts.values())))
    for reason, count in counts.items():
        mlflow.log_metric(f"skipped_{reason}", float(count))
    if rejections.get("examples"):
        mlflow.log_text(redact("\n".join(rejections["examples"])), "skipped_records.txt")


def metric_history_figure(run_id: str, keys: Iterable[str], ylabel: str, title: str):
    """Some metrics of a run against the global step, one line each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    client = MlflowClient()
    figure, axis = plt.subplots(figsize=(7, 4))
    for key in keys:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        if history:
            axis.plot([m.step for m in history], [m.value for m in history], label=key, marker=".")
    axis.set(xlabel="global step", ylabel=ylabel, title=title)
    axis.legend()
    figure.tight_layout()
    return figure
