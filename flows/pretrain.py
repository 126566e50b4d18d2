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
from components.config import job_parser, parse_job
from components.data.prepare import load_vocabulary, prepare_data, with_vocabulary


def main(argv: list[str] | None = None) -> int:
    job = parse_job(job_parser(__doc__).parse_args(argv), task="pretrain")  # 1. config, validated
    job = prepare_data(job)  # 2. data (the synthetic set is built if it is the default and absent)
    tokenizer = load_vocabulary(job.data.dataset)
    job = with_vocabulary(job, tokenizer)
    # torch, Ray and MLflow load from here on: --help, a bad config or a missing dataset answer at once
    from components.evaluation.oracle import validation_field_sheet
    from components.serving.pyfunc import log_checkpoint_model
    from components.training.tracked import default_run_name, tracked_fit

    fields = validation_field_sheet(job.data.dataset, job.data.val_images)  # 3. field accuracy, on a synthetic crawl
    # 4. MLflow run, Ray, train; the final checkpoint logged as the run's pyfunc model
    tracked_fit(job, tokenizer, default_run_name(job), log_model=log_checkpoint_model, fields=fields)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
