"""Sweep layers, width, grid size and learning rate with Ray Tune; register the winner in MLflow.

    python flows/tune.py                                       # preset small: 4 trials on a laptop
    python flows/tune.py --set tune.num_samples=8 --set 'tune.space.model.d_model=[128, 256, 384]'
    ray job submit --working-dir . -- python flows/tune.py --preset paper

Every trial is the shared training loop in its own TorchTrainer and its own MLflow run, nested under
the sweep's run; ASHA stops trials that fall behind on the validation metric. The best trial is
evaluated on the gate split, logged as a pyfunc model and registered as `caponimage`: `champion`
moves to it only if it beats the current champion there, otherwise it becomes the `challenger`.
"""

from __future__ import annotations

import json
import sys

import mlflow

from components import storage
from components.cli import run
from components.data.pipeline import dataset_version, read_index
from components.data.release import IMAGES_DIR
from components.errors import CapOnImageError
from components.serving.pyfunc import example_request
from components.serving.requests import dataset_request
from components.tracking.evaluation import evaluate_and_log, metric_value
from components.tracking.registry import Score, publish
from components.tracking.runs import finish_run, model_checkpoint, resolve_checkpoint, start_run
from components.training.arguments import job_parser, parse_job
from components.training.checkpoint import load_checkpoint
from components.training.config import JobConfig
from components.training.job import init_ray, load_vocabulary, new_run_name, prepare_data, with_vocabulary
from components.training.tuning import check_space, close_stopped_runs, sweep_figure, sweep_rows, tune_trials


class SweepFailed(CapOnImageError):
    """No trial of the sweep reported the metric."""


def log_sweep(job: JobConfig, results) -> list[dict]:
    """The trials' table and the metric against each swept parameter, into the sweep's run."""
    import matplotlib.pyplot as plt

    keys = list(job.tune.space)
    rows = sweep_rows(results, keys, job.tune.metric)
    mlflow.log_text("\n".join(json.dumps(r, default=str) for r in rows) + "\n", "sweep/trials.jsonl")
    figure = sweep_figure(rows, keys, job.tune.metric)
    mlflow.log_figure(figure, "sweep/metric_vs_parameters.png")
    plt.close(figure)
    for row in rows:
        print(" ".join(f"{k}={row[k]}" for k in (*keys, job.tune.metric, "step")))
    return rows


def best_run_id(job: JobConfig, results) -> str:
    try:
        best = results.get_best_result(metric=job.tune.metric, mode=job.tune.mode, scope="last")
    except RuntimeError as err:  # every trial failed, or none reported the metric
        raise SweepFailed(f"no trial reported {job.tune.metric}: {err}") from err
    if not best.metrics or "mlflow_run_id" not in best.metrics:
        raise SweepFailed(f"the best trial reported no {job.tune.metric}; see the trials' errors above")
    return best.metrics["mlflow_run_id"]


def score_version(job: JobConfig, split: str, limit: int | None):
    """How a registered version is scored when the champion's recorded score is on other terms."""

    def rescore(version) -> float:
        uri = f"models:/{job.tracking.registered_model}/{version.version}"
        folder = model_checkpoint(uri, job.tracking.tracking_uri)
        report, _ = evaluate_and_log(
            job,
            load_checkpoint(folder, with_training_state=False),
            split,
            run_name=f"rescore-champion-v{version.version}",
            tags={"model_version": str(version.version)},
            limit=limit,
            sheets=0,
        )
        return metric_value(report, job.tracking.gate_metric)

    return rescore


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--eval-images", type=int, default=None, help="gate-split images to score (default: all)")
    parser.add_argument("--no-register", action="store_true", help="sweep and evaluate, register nothing")
    args = parser.parse_args(argv)
    job = parse_job(args, task="pretrain")  # 1. config, search space included, validated
    check_space(job)
    job = prepare_data(job)  # 2. data
    tokenizer = load_vocabulary(job.data.dataset)
    job = with_vocabulary(job, tokenizer)
    sweep_name = job.ray.run_name or new_run_name("tune")
    parent = start_run(job, sweep_name, tags={"task": "tune", "ray_run_name": sweep_name})  # 3. tracking
    with finish_run(parent):
        init_ray(job)  # 4. cluster
        results = tune_trials(job, tokenizer, sweep_name, parent)  # 5. the sweep
        stopped = close_stopped_runs(job.tracking.tracking_uri, parent, results, job.train.steps)
        mlflow.log_metric("trials_stopped_early", stopped)
        log_sweep(job, results)  # 6. table and plot
        winner = best_run_id(job, results)
        mlflow.set_tag("best_trial_run", winner)
        checkpoint_folder = resolve_checkpoint(winner, job.tracking.tracking_uri)  # 7. the winner, evaluated
        split = job.tracking.gate_split
        report, _ = evaluate_and_log(
            job,
            load_checkpoint(checkpoint_folder, with_training_state=False),
            split,
            run_name=f"evaluate-{split}-best",
            tags={"model_source": winner},
            limit=args.eval_images,
        )
        print(report.table(f"best trial {winner}, {split}"))
        if args.no_register:
            return 0
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
        registration = publish(  # 8. registry, behind the champion gate
            job.tracking.tracking_uri,
            job.tracking.registered_model,
            winner,
            checkpoint_folder,
            example_request(request["image"], request["info"], request["boxes"]),
            score,
            tags={
                "data_version": score.data_version,
                "dataset": job.data.dataset,
                "sweep_run": parent,
                **{f"metric.{k}": f"{v:.4f}" for k, v in report.metrics().items()},
            },
            rescore=score_version(job, split, args.eval_images),
        )
        mlflow.set_tags({"registered_version": registration.version, "registered_alias": registration.alias})
        print(registration.summary())
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
