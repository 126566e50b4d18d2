"""Ray Tune over the shared training loop (the paper's Figure 4: layers, width, grid size).

Each trial is a function that builds one ``TorchTrainer`` (the Ray 2.60 pattern) around the same
worker loop as pre-training, inside its own MLflow run nested under the sweep's run. Tune sees the
validation reports only (through ``ValidationReport``), at their global step, so ASHA compares
trials on the metric at equal steps. The pure parts (space, overrides, concurrency, the sweep
table and plot) are tested without Ray.
"""

from __future__ import annotations

import json
import math
from typing import Any

import ray
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler

from components.config import JobConfig
from components.config.sweep import trial_job
from components.data.release.dataset import PreparedDataset
from components.errors import SweepFailed
from components.evaluation.fields import FieldSheet
from components.metric_names import SWEEP, metric_key
from components.tracking.runs import TrackedRun, child_runs, close_run, new_run_name
from components.training.tracked_fit import tracked_fit


def search_space(space: dict[str, Any]) -> dict[str, Any]:
    """The config's space as Ray Tune's ``param_space`` (flat dotted keys)."""
    out = {}
    for key, dimension in space.items():
        if isinstance(dimension, list):
            out[key] = tune.choice(dimension)
            continue
        kind, values = next(iter(dimension.items()))
        out[key] = {
            "choice": lambda v: tune.choice(v),
            "grid": lambda v: tune.grid_search(v),
            "uniform": lambda v: tune.uniform(*v),
            "loguniform": lambda v: tune.loguniform(*v),
            "randint": lambda v: tune.randint(*v),
        }[kind](values)
    return out


# -- resources (pure) --------------------------------------------------------------------------------
def trial_resources(job: JobConfig) -> dict[str, float]:
    """What one trial's TorchTrainer holds: its workers plus the train and val decoding actors."""
    decoding = 2 * job.data.decode_actors * 0.5  # two datasets; each actor asks for half a CPU
    return {
        "CPU": job.ray.num_workers * job.ray.cpus_per_worker + decoding,
        "GPU": float(job.ray.num_workers) if job.ray.use_gpu else 0.0,
    }


def concurrency(job: JobConfig, cluster: dict[str, float]) -> int:
    """Trials at once: ``tune.max_concurrent`` if set, else as many as the cluster holds (at least one)."""
    if job.tune.max_concurrent:
        return job.tune.max_concurrent
    need = trial_resources(job)
    fits = [math.floor(cluster.get(kind, 0.0) / amount) for kind, amount in need.items() if amount > 0]
    return max(1, min(fits)) if fits else 1


# -- the trial (runs in a Tune trial actor) ----------------------------------------------------------
class ValidationReport(TuneReportCallback):
    """Forwards to Tune the reports that carry the tuned metric, each with the latest checkpoint and
    the trial's MLflow run id, so that ASHA compares validation scores at equal global steps.

    The last step's report is held back: ``run_trial`` sends it after the run is logged, because
    Tune may stop a trial on any report (ASHA does at ``max_t``) and would cut the logging short.
    """

    def __init__(self, metric: str, mlflow_run_id: str, last_step: int):
        super().__init__()
        self.metric, self.mlflow_run_id, self.last_step = metric, mlflow_run_id, last_step
        self.latest_checkpoint = None

    def after_report(self, run_context, metrics, checkpoint) -> None:
        if checkpoint is not None:
            self.latest_checkpoint = checkpoint
        values = dict(metrics[0]) if metrics else {}
        if self.metric not in values or values.get("step") == self.last_step:
            return
        values["mlflow_run_id"] = self.mlflow_run_id
        super().after_report(run_context, [values], self.latest_checkpoint)


def run_trial(
    sampled: dict[str, Any],
    *,
    job: dict,
    dataset: PreparedDataset,
    parent_run_id: str,
    fields: FieldSheet | None = None,
) -> None:
    """One trial: the sampled job trained by the shared loop, in an MLflow run nested under the sweep."""
    trial = trial_job(JobConfig.from_dict(job), sampled)
    trial_name = tune.get_context().get_trial_name()
    fitted = tracked_fit(
        trial,
        dataset,
        f"trial-{trial_name}",
        ray_run_name=new_run_name(f"trial-{trial_name}"),
        parent_run_id=parent_run_id,
        tags={"tune_trial": trial_name, **{f"tuned.{k}": str(v) for k, v in sampled.items()}},
        extra_callbacks=lambda run_id: (ValidationReport(trial.tune.metric, run_id, trial.train.steps),),
        fields=fields,
    )
    final = {k: v for k, v in (fitted.result.metrics or {}).items() if isinstance(v, int | float)}
    tune.report({**final, "mlflow_run_id": fitted.run_id, "checkpoint_path": fitted.result.checkpoint.path})


# -- the sweep's table and plot (pure) ---------------------------------------------------------------
def sweep_rows(results, keys: list[str], metric: str) -> list[dict[str, Any]]:
    """One row per trial: the swept values, the metric at its last validation, the step and status."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        rows.append(
            {
                **{k: result.config.get(k) for k in keys},
                metric: metrics.get(metric, float("nan")),
                "step": metrics.get("step", 0),
                "mlflow_run_id": metrics.get("mlflow_run_id", ""),
                "error": "" if result.error is None else error_line(result.error),
            }
        )
    return rows


def error_line(error: BaseException) -> str:
    """A trial's error in one line: its type and the first line of its message (Ray Train's errors
    carry the worker's whole traceback; the trial's MLflow run has the rest in its tag ``error``)."""
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first.strip()}"[:300] if first else type(error).__name__


def sweep_figure(rows: list[dict[str, Any]], keys: list[str], metric: str):
    """The metric against each swept parameter, one panel per parameter (the paper's Figure 4a)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.6), squeeze=False)
    for axis, key in zip(axes[0], keys, strict=True):
        points = [(r[key], r[metric]) for r in rows if r[key] is not None and not math.isnan(r[metric])]
        numeric = all(isinstance(x, int | float) for x, _ in points)
        xs = [x if numeric else str(x) for x, _ in points]
        axis.scatter(xs, [y for _, y in points], s=36)
        if numeric and key.endswith("lr"):
            axis.set_xscale("log")
        axis.set(xlabel=key, ylabel=metric, title=f"{metric} vs {key}")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


# -- the sweep (driver side) -------------------------------------------------------------------------
def tune_trials(
    job: JobConfig,
    dataset: PreparedDataset,
    sweep_name: str,
    parent_run_id: str,
    fields: FieldSheet | None = None,
):
    """Run the sweep over the prepared ``dataset``: one ``run_trial`` per sampled configuration, ASHA
    on the validation metric, each trial's final checkpoint logged as its model; with ``fields`` (the val subset's
    field sheet) every trial reports field accuracy."""
    trainable = tune.with_parameters(
        run_trial,
        job=job.as_dict(),
        dataset=dataset,
        parent_run_id=parent_run_id,
        fields=fields,
    )
    # The trial function only drives its TorchTrainer, whose controller and workers hold the resources.
    trainable = tune.with_resources(trainable, {"cpu": 0.01})  # Tune refuses an empty request
    scheduler = ASHAScheduler(
        time_attr="step",
        max_t=job.train.steps,
        grace_period=min(job.tune.grace_period, job.train.steps),
        reduction_factor=job.tune.reduction_factor,
    )
    tuner = tune.Tuner(
        trainable,
        param_space=search_space(job.tune.space),
        tune_config=tune.TuneConfig(
            metric=job.tune.metric,
            mode=job.tune.mode,
            scheduler=scheduler,
            num_samples=job.tune.num_samples,
            max_concurrent_trials=concurrency(job, ray.cluster_resources()),
        ),
        run_config=tune.RunConfig(name=sweep_name, storage_path=job.ray.storage_path),
    )
    return tuner.fit()


def stopped_early(results, steps: int) -> dict[str, int]:
    """MLflow run id -> last step reported, for the trials the scheduler stopped short of their steps."""
    stopped = {}
    for result in results:
        metrics = result.metrics or {}
        run_id, step = metrics.get("mlflow_run_id"), int(metrics.get("step", 0))
        planned = int((result.config or {}).get("train.steps", steps))  # the sweep may tune the length
        if result.error is None and run_id and step < planned:
            stopped[run_id] = step
    return stopped


def close_stopped_runs(tracking_uri: str, parent_run_id: str, results, steps: int) -> int:
    """Close the sweep's trial runs that did not finish; how many ASHA stopped.

    Tune stops a trial by terminating its process, which leaves its MLflow run RUNNING or, when the
    signal lands inside the run, FAILED. A stopped trial is not a failure: mark it KILLED, tagged
    ``stopped_by=ASHA`` with the step it reached. Any other run still RUNNING ended uncleanly: FAILED.
    """
    early = stopped_early(results, steps)
    for run_id, step in early.items():
        close_run(tracking_uri, run_id, "KILLED", {"stopped_by": "ASHA", "stopped_at_step": str(step)})
    for run_id in child_runs(tracking_uri, parent_run_id, status="RUNNING"):
        close_run(tracking_uri, run_id, "FAILED")
    return len(early)


def log_sweep(job: JobConfig, results, sweep: TrackedRun) -> str:
    """Into the sweep's run: stopped trials closed, how many failed, the trials' table, the metric
    against each swept parameter; printed too. The MLflow run id of the best trial. (A failed
    trial's own run has its error in the tag ``error``.)"""
    stopped = close_stopped_runs(job.tracking.tracking_uri, sweep.run_id, results, job.train.steps)
    sweep.log_metric(metric_key(SWEEP, "trials_stopped_early"), stopped)
    keys = list(job.tune.space)
    rows = sweep_rows(results, keys, job.tune.metric)
    sweep.log_metric(metric_key(SWEEP, "trials_failed"), sum(bool(r["error"]) for r in rows))
    sweep.log_text("\n".join(json.dumps(r, default=str) for r in rows) + "\n", "sweep/trials.jsonl")
    sweep.log_figure(sweep_figure(rows, keys, job.tune.metric), "sweep/metric_vs_parameters.png")
    for row in rows:
        print(" ".join(f"{k}={row[k]}" for k in (*keys, job.tune.metric, "step", "error") if row[k] != ""))
    winner = best_trial_run(job, results)
    sweep.set_tag("best_trial_run", winner)
    return winner


def best_trial_run(job: JobConfig, results) -> str:
    """The MLflow run id of the trial best on the tuned metric at its last validation."""
    try:
        best = results.get_best_result(metric=job.tune.metric, mode=job.tune.mode, scope="last")
    except RuntimeError as err:  # every trial failed, or none reported the metric
        raise SweepFailed(f"no trial reported {job.tune.metric}: {err}") from err
    if not best.metrics or "mlflow_run_id" not in best.metrics:
        raise SweepFailed(f"the best trial reported no {job.tune.metric}; see the trials' errors above")
    return best.metrics["mlflow_run_id"]
