"""Pre-train CapOnImage: caption generation plus caption matching (3:1) under the progressive curriculum.

    python flows/pretrain.py                                   # embedded defaults: preset small, local Ray
    python flows/pretrain.py --preset paper --set ray.num_workers=16
    ray job submit --working-dir . -- python flows/pretrain.py --set train.steps=2000

Ray Data streams the masked images, Ray Train runs DDP, MLflow records the run (sqlite:///mlflow.db
by default: `mlflow ui --backend-store-uri sqlite:///mlflow.db`).
"""

from __future__ import annotations

import sys

from components.cli import run
from components.tracking.runs import finish_run, log_results, start_run
from components.training.arguments import job_parser, parse_job
from components.training.job import fit, init_ray, load_vocabulary, new_run_name, prepare_data, with_vocabulary


def main(argv: list[str] | None = None) -> int:
    job = parse_job(job_parser(__doc__).parse_args(argv), task="pretrain")  # 1. config, validated
    job = prepare_data(job)  # 2. data (the synthetic set is built if it is the default and absent)
    tokenizer = load_vocabulary(job.data.dataset)
    job = with_vocabulary(job, tokenizer)
    run_name = job.ray.run_name or new_run_name("pretrain")
    run_id = start_run(job, run_name, tags={"ray_run_name": run_name})  # 3. tracking
    with finish_run(run_id) as outcome:
        init_ray(job)  # 4. cluster
        result, skipped = fit(job, tokenizer, run_name, run_id)  # 5. train
        log_results(job, result, skipped, run_id)  # 6. log
        outcome.update(result=result)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
