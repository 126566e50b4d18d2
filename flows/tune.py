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

import sys

from components.cli import run
from components.cluster import init_ray
from components.config import check_space, job_parser, parse_job
from components.data.prepare import prepare_dataset


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--eval-images", type=int, default=None, help="gate-split images to score (default: all)")
    parser.add_argument("--no-register", action="store_true", help="sweep and evaluate, register nothing")
    args = parser.parse_args(argv)
    job = parse_job(args, task="pretrain")  # 1. config, search space included, validated
    check_space(job)
    # torch, Ray and MLflow load from here on: --help and a bad config answer at once
    from components.evaluation.oracle import validation_field_sheet
    from components.serving.registry import evaluate_and_register
    from components.tracking.runs import job_run, new_run_name
    from components.training.tuning import log_sweep, tune_trials

    job, dataset = prepare_dataset(job)  # 2. data, prepared once
    sweep_name = job.ray.run_name or new_run_name("tune")
    with job_run(job, sweep_name, tags={"task": "tune", "ray_run_name": sweep_name}) as sweep:  # 3. tracking
        init_ray(job)  # 4. cluster
        fields = validation_field_sheet(dataset.table, job.data.val_images)  # a synthetic crawl's
        results = tune_trials(job, dataset, sweep_name, sweep.run_id, fields)  # 5. the sweep
        winner = log_sweep(job, results, sweep)  # 6. table and plot, the best trial
        split = job.tracking.gate_split
        report, registration = evaluate_and_register(  # 7. the winner, evaluated, 8. behind the champion gate
            job,
            dataset,
            winner,
            run_name=new_run_name(f"evaluate-{split}-best"),
            tags={"model_source": winner},
            registry_tags={"sweep_run": sweep.run_id},
            parent_run_id=sweep.run_id,
            tag_run=sweep,
            eval_images=args.eval_images,
            register=not args.no_register,
        )
        print(report.table(f"best trial {winner}, {split}"))
        if registration is not None:
            print(registration.summary())
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
