"""MLflow runs for the training flows: parameters, metrics from Ray Train, checkpoints, plots.

Metrics travel from the rank-0 worker through ``ray.train.report`` to the Ray Train controller,
where ``MlflowReportCallback`` logs them; the workers never talk to MLflow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import ray.train
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from components.errors import ConfigError
from components.training.checkpoint import STATE_FILE
from components.training.config import JobConfig
from components.training.curriculum import level_probabilities

log = logging.getLogger(__name__)
CHECKPOINT_ARTIFACT = "checkpoint"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_URI_CREDENTIALS = re.compile(r"(\w[\w+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """Credentials inside URIs (``scheme://user:password@host``) never reach the tracking store."""
    return _URI_CREDENTIALS.sub(r"\1***@", text)


class MlflowReportCallback(ray.train.UserCallback):
    """Logs rank 0's reported metrics (at its ``step``) and the latest checkpoint's location."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self._client: MlflowClient | None = None

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        values = dict(metrics[0]) if metrics else {}
        step = int(values.pop("step", 0))
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, step)
            for k, v in values.items()
            if isinstance(v, int | float) and math.isfinite(float(v))
        ]
        if batch:
            self._client.log_batch(self.run_id, metrics=batch)
        if checkpoint is not None:
            self._client.set_tag(self.run_id, "checkpoint_uri", checkpoint_uri(checkpoint))


def checkpoint_uri(checkpoint) -> str:
    """Where a Ray checkpoint lives, as a URI (``s3://...``) or local path."""
    filesystem = getattr(checkpoint, "filesystem", None)
    kind = getattr(filesystem, "type_name", "local")
    return checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path}"


def start_run(
    job: JobConfig, run_name: str, parent_run_id: str | None = None, tags: dict[str, str] | None = None
) -> str:
    """Start the job's MLflow run (the active run of this process) with the resolved config.

    With a run already active (the ablation's parent) the new run is nested under it.
    """
    mlflow.set_tracking_uri(job.tracking.tracking_uri)
    mlflow.set_experiment(job.tracking.experiment)
    run = mlflow.start_run(
        run_name=run_name,
        parent_run_id=parent_run_id,
        nested=mlflow.active_run() is not None,
        log_system_metrics=job.tracking.system_metrics,
        tags={"task": job.task, **(tags or {})},
    )
    mlflow.log_params({k: redact(str(v))[:500] for k, v in job.flat().items()})
    mlflow.log_text(redact(json.dumps(job.as_dict(), indent=2, default=list)), "config/job.json")
    return run.info.run_id


def curriculum_figure(schedule: str, steps: int, scale: float = 1.0):
    """p1, p2, p3 against the global step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = sorted({max(1, round(steps * i / 400)) for i in range(401)})
    probabilities = [level_probabilities(schedule, round(x * scale)) for x in xs]
    figure, axis = plt.subplots(figsize=(7, 4))
    for level, label in enumerate(("p1: another image", "p2: another box", "p3: a neighbour")):
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


def loss_figure(run_id: str, keys=("loss_generation", "loss_matching", "val_loss_generation")):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    client = MlflowClient()
    figure, axis = plt.subplots(figsize=(7, 4))
    for key in keys:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        if history:
            axis.plot([m.step for m in history], [m.value for m in history], label=key, marker=".")
    axis.set(xlabel="global step", ylabel="loss", title="training losses")
    axis.legend()
    figure.tight_layout()
    return figure


def log_results(job: JobConfig, result, rejections: dict[str, Any], run_id: str) -> None:
    """After ``fit``: the final checkpoint, the plots and the skipped records, into the active run."""
    import matplotlib.pyplot as plt

    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as folder:
            # Weights, config and vocabulary: enough to fine-tune, evaluate or serve. The optimiser
            # state (twice the weights) stays in Ray's storage for resuming.
            for path in Path(folder).iterdir():
                if path.is_file() and path.name != STATE_FILE:
                    mlflow.log_artifact(str(path), CHECKPOINT_ARTIFACT)
        mlflow.set_tag("checkpoint_uri", checkpoint_uri(result.checkpoint))
    for name, figure in (
        ("plots/curriculum.png", curriculum_figure(job.train.negatives, job.train.steps, job.train.curriculum_scale)),
        ("plots/losses.png", loss_figure(run_id)),
    ):
        mlflow.log_figure(figure, name)
        plt.close(figure)
    counts = rejections.get("counts", {})
    mlflow.log_metric("skipped_records", float(sum(counts.values())))
    for reason, count in counts.items():
        mlflow.log_metric(f"skipped_{reason}", float(count))
    if rejections.get("examples"):
        mlflow.log_text("\n".join(rejections["examples"]), "skipped_records.txt")


def resolve_checkpoint(source: str, tracking_uri: str) -> str:
    """A local folder holding the checkpoint named by ``source``: an MLflow run id, a ``runs:/`` URI,
    a registered model (``models:/caponimage@champion``), or a checkpoint folder / URI (``s3://...``).
    Downloads what is remote."""
    from components import storage

    if source.startswith("models:/"):
        return model_checkpoint(source, tracking_uri)
    if RUN_ID.match(source) or source.startswith("runs:/"):
        run_id = source.removeprefix("runs:/").split("/")[0]
        mlflow.set_tracking_uri(tracking_uri)
        try:
            return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=CHECKPOINT_ARTIFACT)
        except Exception as err:  # MLflow raises several types for a missing run or artifact
            raise ConfigError("init_from", f"run {run_id} has no '{CHECKPOINT_ARTIFACT}' artifact: {err}") from err
    if storage.is_uri(source):
        local = tempfile.mkdtemp(prefix="caponimage-ckpt-")
        storage.copy_dir(source, local)
        return local
    if not Path(source).is_dir():
        raise ConfigError("init_from", f"{source} is neither an MLflow run id nor a checkpoint folder")
    return source


def model_checkpoint(model_uri: str, tracking_uri: str) -> str:
    """The checkpoint folder inside a logged or registered pyfunc model (``models:/name@alias``)."""
    from components.serving.pyfunc import CHECKPOINT_ARTIFACT

    mlflow.set_tracking_uri(tracking_uri)
    try:
        root = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    except Exception as err:  # MLflow raises several types for an unknown model, version or alias
        raise ConfigError("model", f"cannot load {model_uri} from {tracking_uri}: {err}") from err
    folder = Path(root) / "artifacts" / CHECKPOINT_ARTIFACT
    if not folder.is_dir():
        raise ConfigError("model", f"{model_uri} is not a CapOnImage pyfunc model (no {CHECKPOINT_ARTIFACT} inside)")
    return str(folder)


@contextlib.contextmanager
def finish_run(run_id: str):
    """End the active MLflow run as FINISHED, or FAILED if the body raises; print where to look."""
    outcome: dict[str, Any] = {}
    try:
        yield outcome
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    result = outcome.get("result")
    mlflow.end_run()
    checkpoint = checkpoint_uri(result.checkpoint) if result is not None and result.checkpoint else "none"
    print(f"MLflow run {run_id} finished; last checkpoint: {checkpoint}")
    print(f"compare runs: mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}")


def latest_run_id(tracking_uri: str, experiment: str, task: str = "pretrain") -> str:
    """The newest FINISHED run of ``task`` in ``experiment`` (for ``--init-from latest``)."""
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
        raise ConfigError("init_from", f"no finished {task} run in experiment '{experiment}' at {tracking_uri}")
    return runs[0].info.run_id
