"""The MLflow model registry with a champion gate.

Every registered version carries its score (metric, split, dataset version, images scored, value),
its source run and its metrics as tags. The alias ``champion`` moves to a new version only when it
beats the current champion on the same metric, split and data; otherwise the new version gets
``challenger``. A champion scored on something else is scored again on the new version's terms
(``rescore``) before the comparison, so that the gate never compares two different measurements.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components import storage
from components.config import JobConfig
from components.data.index import dataset_version, read_index
from components.data.release import IMAGES_DIR
from components.evaluation.report import EvaluationReport
from components.evaluation.tracked import evaluate_and_log, metric_value
from components.model.checkpoint import load_checkpoint
from components.serving.pyfunc import example_request, log_pyfunc
from components.serving.requests import dataset_request
from components.tracking.sources import ModelSource

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Score:
    """A measurement that two models can be compared on: the same metric, split, data and images."""

    metric: str
    split: str
    data_version: str
    images: int
    value: float
    mode: str = "max"

    def same_terms(self, other: Score) -> bool:
        return (self.metric, self.split, self.data_version, self.images, self.mode) == (
            other.metric,
            other.split,
            other.data_version,
            other.images,
            other.mode,
        )

    def beats(self, other: Score) -> bool:
        """Strictly better (a tie keeps the champion)."""
        if not self.same_terms(other):
            raise ValueError(f"cannot compare {self} with {other}: different terms")
        if math.isnan(self.value):
            return False
        if math.isnan(other.value):
            return True
        return self.value > other.value if self.mode == "max" else self.value < other.value

    def tags(self) -> dict[str, str]:
        return {
            "score.metric": self.metric,
            "score.split": self.split,
            "score.data_version": self.data_version,
            "score.images": str(self.images),
            "score.value": repr(float(self.value)),
            "score.mode": self.mode,
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Score | None:
        try:
            return cls(
                metric=tags["score.metric"],
                split=tags["score.split"],
                data_version=tags["score.data_version"],
                images=int(tags["score.images"]),
                value=float(tags["score.value"]),
                mode=tags.get("score.mode", "max"),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    alias: str  # champion or challenger
    score: Score
    champion_before: Score | None  # the champion's score on the same terms, None if there was none

    def summary(self) -> str:
        text = f"{self.name} version {self.version} -> @{self.alias} ({self.score.metric} {self.score.value:.2f}"
        if self.champion_before is not None:
            text += f" vs champion {self.champion_before.value:.2f}"
        return text + f" on {self.score.split}, data {self.score.data_version}, {self.score.images} images)"


def champion_version(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def register(
    client: MlflowClient,
    name: str,
    model_uri: str,
    score: Score,
    *,
    run_id: str,
    tags: Mapping[str, str] = (),
    rescore: Callable[[ModelVersion], float] | None = None,
) -> Registration:
    """Register ``model_uri`` as a new version of ``name`` and move ``champion`` only if it wins.

    ``rescore(version)`` scores a champion whose recorded score is on other terms; without it such
    a champion stays (the new version becomes the challenger).
    """
    champion = champion_version(client, name)
    version = mlflow.register_model(
        model_uri, name, tags={"source_run": run_id, **dict(tags), **score.tags()}, await_registration_for=300
    )
    client.update_model_version(name, version.version, description=f"{score.metric} {score.value:.3f} on {score.split}")
    before = _champion_score(client, name, champion, score, rescore) if champion is not None else None
    wins = champion is None or (before is not None and score.beats(before))
    alias = CHAMPION if wins else CHALLENGER
    client.set_registered_model_alias(name, alias, version.version)
    if wins and champion is not None:
        client.set_model_version_tag(name, champion.version, "replaced_by", version.version)
    registration = Registration(name, str(version.version), alias, score, before)
    log.info("%s", registration.summary())
    return registration


def _champion_score(client: MlflowClient, name: str, champion: ModelVersion, score: Score, rescore) -> Score | None:
    recorded = Score.from_tags(champion.tags)
    if recorded is not None and recorded.same_terms(score):
        return recorded
    key = _rescore_key(score)
    if key in champion.tags:
        return _on_terms(score, float(champion.tags[key]))
    if rescore is None:
        log.warning("champion version %s was scored on other terms and cannot be rescored here", champion.version)
        return None
    value = float(rescore(champion))
    client.set_model_version_tag(name, champion.version, key, repr(value))  # the next comparison reuses it
    return _on_terms(score, value)


def _rescore_key(score: Score) -> str:
    return f"rescored.{score.metric}.{score.split}.{score.data_version}.{score.images}.{score.mode}"


def _on_terms(score: Score, value: float) -> Score:
    return Score(score.metric, score.split, score.data_version, score.images, value, score.mode)


def publish(
    tracking_uri: str,
    name: str,
    run_id: str,
    checkpoint_folder: str,
    example,
    score: Score,
    *,
    tags: Mapping[str, str] = (),
    rescore: Callable[[ModelVersion], float] | None = None,
) -> Registration:
    """Log a run's checkpoint as a pyfunc model into that run, register it and apply the gate."""
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        model = log_pyfunc(checkpoint_folder, example)
    return register(MlflowClient(tracking_uri), name, model.model_uri, score, run_id=run_id, tags=tags, rescore=rescore)


def register_evaluated(
    job: JobConfig,
    run_id: str,
    checkpoint_folder: str,
    report: EvaluationReport,
    *,
    tags: Mapping[str, str] = (),
    eval_images: int | None = None,
) -> Registration:
    """Register a training run's model, scored on ``tracking.gate_split`` by ``report``, behind the
    champion gate; a champion scored on other terms is evaluated again on these (``eval_images``).
    The outcome (version, alias) is also tagged on the active run, when there is one (the sweep's)."""
    split = job.tracking.gate_split
    score = Score(
        job.tracking.gate_metric,
        split,
        dataset_version(job.data.dataset),
        report.images,
        metric_value(report, job.tracking.gate_metric),
    )
    first = read_index(job.data.dataset, split, limit=1)[0]
    images_root = job.data.images_root or storage.join(job.data.dataset, IMAGES_DIR)
    request = dataset_request(images_root, first["image_id"], first["record"])
    registration = publish(
        job.tracking.tracking_uri,
        job.tracking.registered_model,
        run_id,
        checkpoint_folder,
        example_request(request["image"], request["info"], request["boxes"]),
        score,
        tags={
            "data_version": score.data_version,
            "dataset": job.data.dataset,
            **dict(tags),
            **{f"metric.{k}": f"{v:.4f}" for k, v in report.metrics().items()},
        },
        rescore=rescorer(job, split, eval_images),
    )
    if mlflow.active_run() is not None:
        mlflow.set_tags({"registered_version": registration.version, "registered_alias": registration.alias})
    return registration


def rescorer(job: JobConfig, split: str, limit: int | None) -> Callable[[ModelVersion], float]:
    """How a registered version is scored when the champion's recorded score is on other terms."""

    def rescore(version: ModelVersion) -> float:
        source = ModelSource.parse(f"models:/{job.tracking.registered_model}/{version.version}")
        report, _ = evaluate_and_log(
            job,
            load_checkpoint(source.checkpoint_folder(job.tracking.tracking_uri), with_training_state=False),
            split,
            run_name=f"rescore-champion-v{version.version}",
            tags={"model_version": str(version.version)},
            limit=limit,
            sheets=0,
        )
        return metric_value(report, job.tracking.gate_metric)

    return rescore
