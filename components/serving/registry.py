"""Registering a trained model behind the champion gate, judged by its score.

Every registered version carries its score (metric, split, dataset version, images scored, value),
its source run and its metrics as tags. The alias ``champion`` moves to a new version only when it
beats the current champion on the same metric, split and data; otherwise the new version gets
``challenger``. A champion scored on something else is scored again on the new version's terms
(``rescore``) before the comparison, so that the gate never compares two different measurements.
The gate itself, and the one promotion decision, are ``components.tracking.registry``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from components.config import JobConfig
from components.data.release.dataset import PreparedDataset
from components.evaluation.report import EvaluationReport
from components.evaluation.tracked_evaluation import evaluate_and_log, metric_value
from components.model.checkpoint import load_checkpoint
from components.redaction import redact
from components.tracking.pyfunc import log_checkpoint_model
from components.tracking.registry import CHALLENGER, CHAMPION, ModelVersion, Promotion, Registry
from components.tracking.runs import TrackedRun, portable, tracked_run
from components.tracking.sources import ModelSource, logged_model_uri

log = logging.getLogger(__name__)
__all__ = ["CHALLENGER", "CHAMPION", "Registration", "Score", "evaluate_and_register", "register"]


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

    def description(self) -> str:
        return f"{self.metric} {self.value:.3f} on {self.split}"

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


def register(
    registry: Registry,
    model_uri: str,
    score: Score,
    *,
    run_id: str,
    tags: Mapping[str, str] = (),
    rescore: Callable[[ModelVersion], float] | None = None,
) -> Registration:
    """Register ``model_uri`` as a new version and move ``champion`` only if it wins on ``score``.

    ``rescore(version)`` scores a champion whose recorded score is on other terms; without it such
    a champion stays (the new version becomes the challenger).
    """
    tags = {**dict(tags), **score.tags()}
    version = str(registry.add_version(model_uri, run_id=run_id, tags=tags, description=score.description()).version)
    judged: dict[str, Score | None] = {}

    def judge(champion: ModelVersion | None) -> Promotion:
        before = _champion_score(registry, champion, score, rescore) if champion is not None else None
        judged["before"] = before
        return Promotion(version, champion is None or (before is not None and score.beats(before)))

    _, _, alias = registry.promote(judge)
    registration = Registration(registry.name, version, alias, score, judged["before"])
    log.info("%s", registration.summary())
    return registration


def _champion_score(registry: Registry, champion: ModelVersion, score: Score, rescore) -> Score | None:
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
    registry.tag_version(champion.version, key, repr(value))  # the next comparison reuses it
    return _on_terms(score, value)


def _rescore_key(score: Score) -> str:
    return f"rescored.{score.metric}.{score.split}.{score.data_version}.{score.images}.{score.mode}"


def _on_terms(score: Score, value: float) -> Score:
    return Score(score.metric, score.split, score.data_version, score.images, value, score.mode)


def publish(
    job: JobConfig,
    dataset: PreparedDataset,
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
    model_uri = logged_model_uri(run_id, uri)
    if model_uri is None:
        with tracked_run(job.tracking, run_id=run_id) as run:
            model_uri = log_checkpoint_model(run, checkpoint_folder, dataset, job.task)
    registry = Registry(uri, job.tracking.registered_model)
    return register(registry, model_uri, score, run_id=run_id, tags=tags, rescore=rescore)


def register_evaluated(
    job: JobConfig,
    dataset: PreparedDataset,
    run_id: str,
    checkpoint_folder: str,
    report: EvaluationReport,
    *,
    tags: Mapping[str, str] = (),
    eval_images: int | None = None,
    parent_run_id: str | None = None,
    tag_run: TrackedRun | None = None,
) -> Registration:
    """Register a training run's model, scored on ``tracking.gate_split`` by ``report``, behind the
    champion gate; a champion scored on other terms is evaluated again on these (``eval_images``, in
    a run nested under ``parent_run_id``). The outcome (version, alias) is also tagged on
    ``tag_run`` (the sweep's run)."""
    split = job.tracking.gate_split
    score = Score(
        job.tracking.gate_metric,
        split,
        dataset.version,
        report.images,
        metric_value(report, job.tracking.gate_metric),
    )
    registration = publish(
        job,
        dataset,
        run_id,
        checkpoint_folder,
        score,
        tags={
            "data_version": score.data_version,
            "dataset": redact(portable(job.data.dataset)),
            **dict(tags),
        },
        rescore=rescorer(job, dataset, split, eval_images, parent_run_id),
    )
    if tag_run is not None:
        tag_run.set_tags({"registered_version": registration.version, "registered_alias": registration.alias})
    return registration


def evaluate_and_register(
    job: JobConfig,
    dataset: PreparedDataset,
    run_id: str,
    *,
    run_name: str,
    tags: Mapping[str, str] = (),
    registry_tags: Mapping[str, str] = (),
    parent_run_id: str | None = None,
    tag_run: TrackedRun | None = None,
    eval_images: int | None = None,
    register: bool = True,
) -> tuple[EvaluationReport, Registration | None]:
    """A training run's model evaluated on the gate split in its own run (nested under
    ``parent_run_id``; the sheets and plots of ``flows/evaluate.py``), then registered behind the
    champion gate unless ``register`` is off, the outcome tagged on ``tag_run``. Ray must be up."""
    folder = ModelSource.parse(run_id).checkpoint_folder(job.tracking.tracking_uri)
    report = evaluate_and_log(
        job,
        dataset,
        load_checkpoint(folder, with_training_state=False),
        job.tracking.gate_split,
        run_name=run_name,
        parent_run_id=parent_run_id,
        tags=dict(tags),
        limit=eval_images,
    ).report
    if not register:
        return report, None
    registration = register_evaluated(
        job,
        dataset,
        run_id,
        folder,
        report,
        tags=registry_tags,
        eval_images=eval_images,
        parent_run_id=parent_run_id,
        tag_run=tag_run,
    )
    return report, registration


def rescorer(
    job: JobConfig, dataset: PreparedDataset, split: str, limit: int | None, parent_run_id: str | None = None
) -> Callable[[ModelVersion], float]:
    """How a registered version is scored when the champion's recorded score is on other terms."""

    def rescore(version: ModelVersion) -> float:
        source = ModelSource.registered(job.tracking.registered_model, version.version)
        report = evaluate_and_log(
            job,
            dataset,
            source.load_for_inference(job.tracking.tracking_uri),
            split,
            run_name=f"rescore-champion-v{version.version}",
            parent_run_id=parent_run_id,
            tags={"model_version": str(version.version)},
            limit=limit,
            sheets=0,
        ).report
        return metric_value(report, job.tracking.gate_metric)

    return rescore
