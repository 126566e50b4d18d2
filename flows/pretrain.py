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
from components.data.prepare import prepare_dataset


def main(argv: list[str] | None = None) -> int:
    job = parse_job(job_parser(__doc__).parse_args(argv), task="pretrain")  # 1. config, validated
    job, dataset = prepare_dataset(job)  # 2. data, prepared once (the synthetic set is built if absent)
    # torch, Ray and MLflow load from here on: --help, a bad config or a missing dataset answer at once
    from components.evaluation.oracle import validation_field_sheet
    from components.training.tracked_fit import default_run_name, tracked_fit

    fields = validation_field_sheet(dataset.table, job.data.val_images)  # 3. field accuracy, on a synthetic crawl
    # 4. MLflow run, Ray, train; the final checkpoint logged as the run's pyfunc model
    tracked_fit(job, dataset, default_run_name(job), fields=fields)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
