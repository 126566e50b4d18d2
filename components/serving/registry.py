"""The MLflow model registry with a champion gate.

Every registered version carries its score (metric, split, dataset version, images scored, value),
its source run and its metrics as tags. The alias ``champion`` moves to a new version only when it
beats the current champion on the same metric, split and data; otherwise the new version gets
``challenger``. A champion scored on something else is scored again on the new version's terms
(``rescore``) before the comparison, so that the gate never compares two different measurements.

The gate is one decision at a time (``hold_gate``): reading the champion, comparing and moving the
alias happen while holding a lock in the registry itself, the only service every machine shares.
Taking it creates the registered model ``<name>.gate-lock`` (the store refuses a second create: an
atomic test-and-set on any MLflow backend), with its owner and expiry as tags; releasing deletes it;
an expired one (its holder died) is deleted by the next taker.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.config import JobConfig
from components.data.index import dataset_version
from components.errors import CapOnImageError
from components.evaluation.report import EvaluationReport
from components.evaluation.tracked import evaluate_and_log, metric_value
from components.model.checkpoint import load_checkpoint
from components.serving.pyfunc import log_checkpoint_model
from components.tracking.sources import ModelSource, logged_model_uri

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


GATE_LOCK_SUFFIX = ".gate-lock"


class GateBusy(CapOnImageError):
    """Another registration held the champion gate for longer than this one would wait."""

    exit_code = 75


@contextmanager
def hold_gate(
    client: MlflowClient, name: str, *, lease_s: float = 3600.0, wait_s: float = 3600.0, poll_s: float = 0.5
) -> Iterator[str]:
    """The champion gate of ``name``, held (see the module's docstring); waits for another holder."""
    lock, owner = f"{name}{GATE_LOCK_SUFFIX}", f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.time() + wait_s
    while not _take(client, lock, owner, lease_s):
        if time.time() > deadline:
            raise GateBusy(f"the champion gate of '{name}' stayed held for {wait_s:.0f} s ({lock} exists)")
        time.sleep(poll_s)
    try:
        yield owner
    finally:
        try:
            client.delete_registered_model(lock)
        except MlflowException:
            log.warning("the gate lock %s was gone when released (its lease may have run out)", lock)


def _take(client: MlflowClient, lock: str, owner: str, lease_s: float) -> bool:
    tags = {"owner": owner, "expires": repr(time.time() + lease_s)}
    try:
        client.create_registered_model(lock, tags=tags, description="held while the champion gate decides")
        return True
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    try:
        held = client.get_registered_model(lock)
    except MlflowException:
        return False  # released meanwhile: try again
    if float(held.tags.get("expires", "0")) < time.time():
        log.warning("taking over the expired champion gate of %s (owner %s)", lock, held.tags.get("owner"))
        with suppress(MlflowException):  # another taker may have deleted it first
            client.delete_registered_model(lock)
    return False


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
    version = add_version(client, name, model_uri, run_id=run_id, tags={**dict(tags), **score.tags()}, score=score)
    with hold_gate(client, name):  # read, compare and move as one decision
        champion = champion_version(client, name)
        before = _champion_score(client, name, champion, score, rescore) if champion is not None else None
        wins = champion is None or (before is not None and score.beats(before))
        alias = CHAMPION if wins else CHALLENGER
        set_alias(client, name, alias, version.version, replacing=champion)
    registration = Registration(name, str(version.version), alias, score, before)
    log.info("%s", registration.summary())
    return registration


def add_version(
    client: MlflowClient, name: str, model_uri: str, *, run_id: str, tags: Mapping[str, str], score: Score
) -> ModelVersion:
    """``model_uri`` registered as a new version of ``name``, tagged with its source run, ``tags`` and
    its score (also its description)."""
    tags = {"source_run": run_id, **dict(tags)}
    version = mlflow.register_model(model_uri, name, tags=tags, await_registration_for=300)
    client.update_model_version(name, version.version, description=f"{score.metric} {score.value:.3f} on {score.split}")
    return version


def set_alias(client: MlflowClient, name: str, alias: str, version: str, replacing: ModelVersion | None) -> None:
    """Point ``alias`` at ``version``; a champion it replaces is tagged ``replaced_by``."""
    client.set_registered_model_alias(name, alias, version)
    if alias == CHAMPION and replacing is not None and str(replacing.version) != str(version):
        client.set_model_version_tag(name, replacing.version, "replaced_by", version)


def versions_tagged(client: MlflowClient, name: str, key: str, value: str) -> list[ModelVersion]:
    """The versions of ``name`` whose tag ``key`` is ``value``, oldest first."""
    found = [v for v in client.search_model_versions(f"name = '{name}'") if v.tags.get(key) == value]
    return sorted(found, key=lambda v: int(v.version))


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
    job: JobConfig,
    run_id: str,
    checkpoint_folder: str,
    score: Score,
    *,
    tags: Mapping[str, str] = (),
    rescore: Callable[[ModelVersion], float] | None = None,
) -> Registration:
    """Register a run's logged pyfunc model (logging it into the run first if it has none, as the
    runs of an ablation) and apply the champion gate."""
    uri = job.tracking.tracking_uri
    mlflow.set_tracking_uri(uri)
    model_uri = logged_model_uri(run_id, uri)
    if model_uri is None:
        with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
            model_uri = log_checkpoint_model(checkpoint_folder, job)
    client = MlflowClient(uri)
    return register(client, job.tracking.registered_model, model_uri, score, run_id=run_id, tags=tags, rescore=rescore)


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
    registration = publish(
        job,
        run_id,
        checkpoint_folder,
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


def evaluate_and_register(
    job: JobConfig,
    run_id: str,
    *,
    run_name: str,
    tags: Mapping[str, str] = (),
    registry_tags: Mapping[str, str] = (),
    parent_run_id: str | None = None,
    eval_images: int | None = None,
    register: bool = True,
) -> tuple[EvaluationReport, Registration | None]:
    """A training run's model evaluated on the gate split in its own run (the sheets and plots of
    ``flows/evaluate.py``), then registered behind the champion gate unless ``register`` is off.
    Ray must be up."""
    folder = ModelSource.parse(run_id).checkpoint_folder(job.tracking.tracking_uri)
    report = evaluate_and_log(
        job,
        load_checkpoint(folder, with_training_state=False),
        job.tracking.gate_split,
        run_name=run_name,
        parent_run_id=parent_run_id,
        tags=dict(tags),
        limit=eval_images,
    ).report
    if not register:
        return report, None
    return report, register_evaluated(job, run_id, folder, report, tags=registry_tags, eval_images=eval_images)


def rescorer(job: JobConfig, split: str, limit: int | None) -> Callable[[ModelVersion], float]:
    """How a registered version is scored when the champion's recorded score is on other terms."""

    def rescore(version: ModelVersion) -> float:
        source = ModelSource.parse(f"models:/{job.tracking.registered_model}/{version.version}")
        report = evaluate_and_log(
            job,
            load_checkpoint(source.checkpoint_folder(job.tracking.tracking_uri), with_training_state=False),
            split,
            run_name=f"rescore-champion-v{version.version}",
            tags={"model_version": str(version.version)},
            limit=limit,
            sheets=0,
        ).report
        return metric_value(report, job.tracking.gate_metric)

    return rescore
