"""MLflow runs: the one adapter every flow records through.

    with job_run(job, "pretrain-...", parent_run_id=...) as run:   # params and config logged
        run.log_metrics({...}); run.log_figure(figure, "plots/x.png"); run.log_dataset(...)
    # ended FINISHED, or FAILED with the error in its tag ``error``

A ``TrackedRun`` is a run id with MLflow's client: every call names its run, as Ray's own MLflow
callback does, so no code outside this package reads or writes the process's active run. The
context manager is the one place a run's life is written: it starts the run (a new one, a resumed
one or a parent reopened after a crash) and ends it. It also makes the run MLflow's active run for
as long as it is open, because two MLflow features have no run-id form: system metrics and
``mlflow.pyfunc.log_model`` (``tracking.pyfunc``). Naming runs, finding the newest run of a task,
and closing runs a killed process left open are here too. It knows nothing of training, evaluation
or serving.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, LoggedModelInput, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from components.config import JobConfig, TrackingSection
from components.data.release.table import table_uri
from components.errors import ConfigError
from components.metric_names import DATA, named
from components.model.checkpoint import CHECKPOINT_ARTIFACT, inference_files
from components.processes import dead_here, this_host
from components.redaction import redact
from components.tracking.callback import checkpoint_uri

log = logging.getLogger(__name__)


def new_run_name(task: str) -> str:
    """A unique run name (MLflow's and Ray's): ``pretrain-20261123-120000-1a2b3c``."""
    return f"{task}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


# Config sections that are not about what a run of this kind does stay out of its params (the whole
# config is still in its config/job.json): a training run has no sweep or ingest settings to compare.
UNLOGGED_SECTIONS = {
    "evaluate": ("train", "tune", "ingest", "retrain"),
    "tune": ("ingest", "retrain"),
    "ingest": ("model", "train", "tune", "retrain"),
    "retrain": ("tune",),
}
DEFAULT_UNLOGGED = ("tune", "ingest", "retrain")
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")  # the UI's model-training layout


def portable(value: Any) -> Any:
    """A config value as a param or tag shows it: an absolute local path without this machine's own
    folders (relative to the working directory when under it, else from the folder that holds it: the
    run's config/job.json keeps the whole path); anything else, URIs included, as it is."""
    if not isinstance(value, str) or not value.startswith(("/", "file://")):
        return value
    path = Path(value.removeprefix("file://"))
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(Path(*path.parts[-2:]))


# MLflow 3's UI opens every experiment in its GenAI layout (traces, an empty overview) whatever the
# experiment's kind tag says, unless the link asks for the model-training one; it then remembers it.
UI_WORKFLOW = "workflowType=machine_learning"


def ui_link(server: str, experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI page of an experiment's runs table (or of one run), in the model-training layout."""
    page = f"experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "")
    return f"{server.rstrip('/')}/#/{page}?{UI_WORKFLOW}"


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


def run_tagged(tracking: TrackingSection, tags: Mapping[str, str]) -> tuple[str, str] | None:
    """(run id, status) of the newest run of the experiment carrying all of ``tags``, if any: the run
    of a piece of work done before (a Ray Train run, a retrain), also one a killed driver left RUNNING.
    The values are the project's own names (run keys, run names): no quotes in them."""
    client = MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        return None
    query = " and ".join(f"tags.{name} = '{value}'" for name, value in tags.items())
    found = client.search_runs(
        [experiment.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1
    )
    return (found[0].info.run_id, found[0].info.status) if found else None


def run_of_ray_run(tracking: TrackingSection, ray_run_name: str) -> tuple[str, str] | None:
    """The MLflow run that trained the Ray Train run ``ray_run_name`` before (``run_tagged``): a
    resumed training continues it."""
    return run_tagged(tracking, {"ray_run_name": ray_run_name})


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
METRICS_PER_BATCH = 1000  # MLflow's limits for one log_batch
PARAMS_PER_BATCH = 100
UNIQUE_VIOLATION = re.compile(r"unique constraint|duplicate key|IntegrityError|UniqueViolation", re.IGNORECASE)


def lost_insert_race(error: MlflowException) -> bool:
    """Whether the tracking store refused an insert for a key another writer had just inserted
    (sqlite's, PostgreSQL's and MySQL's wording, directly or through a tracking server)."""
    return bool(UNIQUE_VIOLATION.search(str(error.message)))


def dataset_name(location: str) -> str:
    """A dataset's name in MLflow: the last part of its location (``synthetic``)."""
    return redact(location).rstrip("/").rsplit("/", 1)[-1]


def dataset_input(location: str, version: str, context: str) -> DatasetInput:
    """A version of a dataset's table as a run input: an MLflow dataset named after the dataset folder,
    whose source is the table's URI and whose digest is the version with the table's location (so
    that two datasets of the same name keep their own rows); ``context``: training, evaluation, ingest."""
    uri = redact(table_uri(location))
    with warnings.catch_warnings():  # a local path resolves to two identical local sources
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(uri)
    digest = f"v{version}-{hashlib.sha256(uri.encode()).hexdigest()[:8]}"
    dataset = MetaDataset(source, name=dataset_name(location), digest=digest)
    return DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])


class TrackedRun:
    """One MLflow run by its id: what a flow logs, it logs here."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self.client = MlflowClient(tracking_uri)
        self.last_checkpoint: str | None = None  # named when the run ends

    def log_metrics(
        self, metrics: Mapping[str, float], step: int = 0, model_id: str | None = None, dataset: Any = None
    ) -> None:
        """Metrics at ``step``; with ``model_id`` (and ``dataset``, a ``(name, digest)`` pair) they are
        also the logged model's: its page in the UI lists them, per dataset."""
        now = int(time.time() * 1000)
        name, digest = dataset if dataset is not None else (None, None)
        batch = [Metric(key, float(value), now, step, model_id, name, digest) for key, value in metrics.items()]
        for start in range(0, len(batch), METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=batch[start : start + METRICS_PER_BATCH])

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.log_metrics({key: value}, step)

    # Every text a run stores goes through ``redact``: a location with credentials may reach any of them.
    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(key, redact(str(value))) for key, value in tags.items()])

    def set_tag(self, key: str, value: Any) -> None:
        self.client.set_tag(self.run_id, key, redact(str(value)))

    def log_params(self, params: Mapping[str, str]) -> None:
        items = [Param(key, redact(str(value))) for key, value in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + PARAMS_PER_BATCH])

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.run_id, redact(text), path)

    def log_table(self, columns: Mapping[str, list], path: str) -> None:
        """Columns of equal length as an MLflow table (``path`` ends in .json): the UI's sortable view."""
        self.client.log_table(self.run_id, data=dict(columns), artifact_file=path)

    def log_model_input(self, model_id: str) -> None:
        """The logged model this run used (an evaluation's model): the UI links the two."""
        self.client.log_inputs(self.run_id, models=[LoggedModelInput(model_id)])

    def log_figure(self, figure, path: str) -> None:
        """A matplotlib figure as a PNG artifact, then closed."""
        import matplotlib.pyplot as plt

        self.client.log_figure(self.run_id, figure, path)
        plt.close(figure)

    def log_image(self, image, path: str) -> None:
        self.client.log_image(self.run_id, image, path)

    def log_files(self, paths: Iterable[Path], artifact_path: str) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_folder(self, folder: str | Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_dataset(self, location: str, version: str, context: str) -> None:
        """A dataset version as an input of the run, and its tag ``data_version``. MLflow checks
        whether a dataset exists, then inserts it: runs that log a new version at once (the trials
        of a sweep) race, and the loser logs again, finding the winner's row."""
        for attempt in range(1, DATASET_ATTEMPTS + 1):
            try:
                self.client.log_inputs(self.run_id, datasets=[dataset_input(location, version, context)])
                break
            except MlflowException as error:
                if attempt == DATASET_ATTEMPTS or not lost_insert_race(error):
                    raise
                log.info(
                    "dataset %s@%s was logged by another run at the same moment; logging it again", location, version
                )
        self.set_tag("data_version", version)

    def log_checkpoint(self, checkpoint, files: bool = True) -> None:
        """A Ray Train checkpoint's location as the tag ``checkpoint_uri`` and, with ``files``, its
        weights, config and vocabulary as the ``checkpoint`` artifact (enough to fine-tune, evaluate
        or serve; the optimiser state, twice the weights, stays in Ray's storage for resuming)."""
        if files:
            with checkpoint.as_directory() as folder:
                self.log_files(inference_files(folder), CHECKPOINT_ARTIFACT)
        self.last_checkpoint = checkpoint_uri(checkpoint)
        self.set_tag("checkpoint_uri", self.last_checkpoint)

    def log_skipped_records(self, rejections: dict[str, Any]) -> None:
        """A tally's report (``{"counts": {reason: n}, "examples": [...]}``) as metrics and a text file."""
        counts = rejections.get("counts", {})
        skipped = {"skipped_records": float(sum(counts.values()))}
        skipped.update({f"skipped_{reason}": float(count) for reason, count in counts.items()})
        self.log_metrics(named(DATA, skipped))
        if rejections.get("examples"):
            self.log_text(redact("\n".join(rejections["examples"])), "skipped_records.txt")

    def metric_history_figure(self, keys: Iterable[str], ylabel: str, title: str):
        """Some metrics of the run against the global step, one line each."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(7, 4))
        for key in keys:
            history = sorted(self.client.get_metric_history(self.run_id, key), key=lambda m: m.step)
            if history:
                axis.plot([m.step for m in history], [m.value for m in history], label=key, marker=".")
        axis.set(xlabel="global step", ylabel=ylabel, title=title)
        axis.legend()
        figure.tight_layout()
        return figure

    def info(self):
        """The run as the store has it (status, tags, metrics)."""
        return self.client.get_run(self.run_id)


@contextlib.contextmanager
def tracked_run(
    tracking: TrackingSection,
    run_name: str | None = None,
    *,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    system_metrics: bool = False,
    outcomes: tuple[type[BaseException], ...] = (),
) -> Iterator[TrackedRun]:
    """A run for the body: a new one named ``run_name`` (nested under ``parent_run_id``), or the
    existing ``run_id`` continued. Ended FINISHED, or FAILED if the body raises (the error, redacted,
    in its tag ``error``, for the UI's run page); an exception of ``outcomes`` is an outcome, not a
    failure: the run ends FINISHED and the exception goes on. Prints where to look."""
    uri = tracking.tracking_uri
    mlflow.set_tracking_uri(uri)
    experiment_id = ensure_experiment(uri, tracking.experiment)
    tags = {**(tags or {}), DRIVER_TAG: f"{this_host()}:{os.getpid()}"}  # who has it open: a kill is told apart
    active = mlflow.start_run(
        run_id=run_id,
        experiment_id=None if run_id else experiment_id,
        run_name=None if run_id else run_name,
        parent_run_id=None if run_id else parent_run_id,
        nested=mlflow.active_run() is not None,
        log_system_metrics=system_metrics,
        tags={key: redact(str(value)) for key, value in tags.items()},
    )
    run = TrackedRun(uri, active.info.run_id)
    try:
        yield run
    except outcomes:
        mlflow.end_run()
        raise
    except BaseException as error:
        with contextlib.suppress(Exception):  # the run's own error is the one to raise
            run.set_tag("error", redact(f"{type(error).__name__}: {error}")[:5000])
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()
    line = f"MLflow run {run.run_id} finished"
    if run.last_checkpoint is not None:
        line += f"; last checkpoint: {run.last_checkpoint}"
    print(line)
    experiment = active.info.experiment_id
    if uri.startswith(("http://", "https://")):
        print(f"compare runs: {ui_link(redact(uri), experiment, run.run_id)}")
    else:
        local = ui_link("http://127.0.0.1:5000", experiment)
        print(f"compare runs: mlflow ui --backend-store-uri {redact(uri)}, then {local}")


@contextlib.contextmanager
def job_run(
    job: JobConfig,
    run_name: str,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    resume_run_id: str | None = None,
    outcomes: tuple[type[BaseException], ...] = (),
    work_key: str | None = None,
) -> Iterator[TrackedRun]:
    """The job's run, its resolved config as params and as ``config/job.json`` (``tracked_run``).

    The run's kind is its ``task`` tag (the job's task unless ``tags`` says otherwise, e.g. ``tune``).
    ``resume_run_id`` continues that run instead (a resumed training): params it has keep their
    values, and the ones that changed are named in the tag ``changed_on_resume``. ``work_key`` names
    the work (an ingest of these partitions, an evaluation of this model on this split): a run of the
    same work left RUNNING by a killed driver is closed first (``close_abandoned``).
    """
    tags = {"task": job.task, **(tags or {})}
    if work_key is not None:
        close_abandoned(job.tracking, work_key)
        tags[WORK_TAG] = work_key
    before = MlflowClient(job.tracking.tracking_uri).get_run(resume_run_id).data.params if resume_run_id else {}
    with tracked_run(
        job.tracking,
        run_name,
        run_id=resume_run_id,
        parent_run_id=parent_run_id,
        tags=tags,
        system_metrics=job.tracking.system_metrics,
        outcomes=outcomes,
    ) as run:
        unlogged = UNLOGGED_SECTIONS.get(tags["task"], DEFAULT_UNLOGGED)
        params = {k: redact(str(portable(v)))[:500] for k, v in job.flat().items() if k.split(".")[0] not in unlogged}
        changed = sorted(k for k, v in params.items() if k in before and before[k] != v)
        if resume_run_id:
            run.set_tags(tags)
        if changed:
            run.set_tag("changed_on_resume", ", ".join(changed)[:5000])
        run.log_params({k: v for k, v in params.items() if k not in changed})
        run.log_text(redact(json.dumps(job.as_dict(), indent=2, default=list)), "config/job.json")
        yield run


DRIVER_TAG = "driver"  # host:pid of the process that has the run open
WORK_TAG = "work_key"


def work_key(*parts: Any) -> str:
    """A short key for a piece of work from what defines it (``job_run``'s ``work_key``)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def close_abandoned(tracking: TrackingSection, key: str) -> list[str]:
    """The runs of the work ``key`` left RUNNING by a driver that is a dead process of this machine,
    closed as KILLED (tag ``interrupted``); their ids. A RUNNING run of another machine's driver is left
    alone: whether that driver lives cannot be told from here."""
    client = MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        return []
    query = f"tags.{WORK_TAG} = '{key}' and attributes.status = 'RUNNING'"
    closed = []
    for found in client.search_runs([experiment.experiment_id], query):
        host, _, pid = found.data.tags.get(DRIVER_TAG, "").rpartition(":")
        if pid.isdigit() and dead_here(host, int(pid)):
            note = f"its driver (pid {pid} on {host}) died without ending it; closed by the next run of the same work"
            close_run(tracking.tracking_uri, found.info.run_id, "KILLED", {"interrupted": note})
            log.warning("closed run %s: %s", found.info.run_id, note)
            closed.append(found.info.run_id)
    return closed


def close_run(tracking_uri: str, run_id: str, status: str, tags: Mapping[str, str] = ()) -> None:
    """End a run another process left open (``KILLED``, ``FAILED``), tagged with why."""
    run = TrackedRun(tracking_uri, run_id)
    run.set_tags(dict(tags))
    run.client.set_terminated(run_id, status=status)


def child_runs(tracking_uri: str, parent_run_id: str, status: str | None = None) -> list[str]:
    """The ids of a run's nested runs (of one status, e.g. ``RUNNING``)."""
    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    query = f"tags.mlflow.parentRunId = '{parent_run_id}'"
    if status:
        query += f" and attributes.status = '{status}'"
    return [r.info.run_id for r in client.search_runs([parent.info.experiment_id], query)]


def run_record(tracking_uri: str, run_id: str, key: str = "run"):
    """A finished run's metrics and tags (``run.data``), or a ``ConfigError`` naming ``key``."""
    try:
        return MlflowClient(tracking_uri).get_run(run_id).data
    except MlflowException as err:
        raise ConfigError(key, f"no run {run_id} in {redact(tracking_uri)}") from err
