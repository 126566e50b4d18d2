"""Fine-tune CapOnImage on caption generation alone, from a pre-training run or checkpoint.

    python flows/finetune.py --init-from RUN_ID                # an MLflow run of flows/pretrain.py
    python flows/finetune.py --init-from latest                # the newest finished pre-training run
    python flows/finetune.py --init-from s3://bucket/ray/pretrain-.../checkpoint_00200000

The model architecture and vocabulary come from the checkpoint; the run is nested under the
pre-training run in MLflow and tagged with it.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from components.cli import run
from components.tracking.runs import RUN_ID, finish_run, latest_run_id, log_results, resolve_checkpoint, start_run
from components.training.arguments import job_parser, parse_job
from components.training.checkpoint import load_checkpoint
from components.training.job import finetune_job, fit, init_ray, new_run_name, prepare_data


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument(
        "--init-from", required=True, help="MLflow run id, runs:/ URI, checkpoint folder/URI, or 'latest'"
    )
    args = parser.parse_args(argv)
    job = parse_job(args, task="finetune", init_from=args.init_from)  # 1. config, validated
    if job.init_from == "latest":
        job = replace(job, init_from=latest_run_id(job.tracking.tracking_uri, job.tracking.experiment))
    pretrained = load_checkpoint(resolve_checkpoint(job.init_from, job.tracking.tracking_uri), False)
    job = prepare_data(finetune_job(job, pretrained.job))  # 2. data; model and vocabulary from the checkpoint
    parent = job.init_from.removeprefix("runs:/").split("/")[0]
    parent = parent if RUN_ID.match(parent) else None
    run_name = job.ray.run_name or new_run_name("finetune")
    run_id = start_run(
        job,
        run_name,
        parent_run_id=parent,  # 3. tracking, nested under pre-training
        tags={"ray_run_name": run_name, "init_from": job.init_from, "pretrain_run_id": parent or ""},
    )
    with finish_run(run_id) as outcome:
        import ray

        init_ray(job)  # 4. cluster
        weights = ray.put(pretrained.model_state)  # reaches every worker on any node
        result, skipped = fit(job, pretrained.tokenizer, run_name, run_id, init_weights=weights)  # 5. train
        log_results(job, result, skipped, run_id)  # 6. log
        outcome.update(result=result)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
