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
from components.config import job_parser, parse_job
from components.data.prepare import load_vocabulary, prepare_data, with_vocabulary
from components.evaluation.tracked import evaluate_and_log
from components.model.checkpoint import load_checkpoint
from components.serving.registry import register_evaluated
from components.tracking.runs import finish_run, new_run_name, start_run
from components.tracking.sources import ModelSource
from components.training.tuning import check_space, log_sweep, tune_trials


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
        winner = log_sweep(job, results, parent)  # 6. table and plot, the best trial
        folder = ModelSource.parse(winner).checkpoint_folder(job.tracking.tracking_uri)  # 7. the winner, evaluated
        split = job.tracking.gate_split
        report, _ = evaluate_and_log(
            job,
            load_checkpoint(folder, with_training_state=False),
            split,
            run_name=f"evaluate-{split}-best",
            tags={"model_source": winner},
            limit=args.eval_images,
        )
        print(report.table(f"best trial {winner}, {split}"))
        if args.no_register:
            return 0
        registration = register_evaluated(  # 8. registry, behind the champion gate
            job, winner, folder, report, tags={"sweep_run": parent}, eval_images=args.eval_images
        )
        print(registration.summary())
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
