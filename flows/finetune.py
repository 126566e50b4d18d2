"""Fine-tune CapOnImage on caption generation alone, from a pre-training run or checkpoint.

    python flows/finetune.py --init-from RUN_ID                # an MLflow run of flows/pretrain.py
    python flows/finetune.py --init-from latest                # the newest finished pre-training run
    python flows/finetune.py --init-from s3://bucket/ray/pretrain-.../checkpoint_00200000

The model architecture and vocabulary come from the checkpoint; the run is nested under the
pre-training run in MLflow and tagged with it. The fine-tuned model is logged as the run's pyfunc
model, evaluated on the gate split (tracking.gate_split) and registered as `caponimage`: `champion`
if it beats the current champion there (the first model always does), else `challenger`.
"""

from __future__ import annotations

import sys

from components.cli import run
from components.config import job_parser, parse_job
from components.data.prepare import prepare_dataset


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument(
        "--init-from", required=True, help="MLflow run id, runs:/ URI, checkpoint folder/URI, or 'latest'"
    )
    parser.add_argument("--eval-images", type=int, default=None, help="gate-split images to score (default: all)")
    parser.add_argument("--no-register", action="store_true", help="evaluate, register nothing")
    args = parser.parse_args(argv)
    job = parse_job(args, task="finetune", init_from=args.init_from)  # 1. config, validated
    # torch, Ray and MLflow load from here on: --help and a bad config answer at once
    from components.evaluation.oracle import validation_field_sheet
    from components.serving.registry import evaluate_and_register
    from components.tracking.runs import new_run_name
    from components.tracking.sources import ModelSource
    from components.training.driver import extend_vocabulary, finetune_job, vocabulary_params
    from components.training.tracked_fit import default_run_name, tracked_fit

    source = ModelSource.resolve(job.init_from, job.tracking, latest_of="pretrain", key="--init-from")
    pretrained = source.load_for_inference(job.tracking.tracking_uri)
    job = finetune_job(job.with_overrides(init_from=source.text), pretrained.job)  # 2. the pre-trained model
    job, dataset = prepare_dataset(job)  # 3. data; the model's vocabulary grown by the tokens the data's gained
    job, tokenizer, weights, added = extend_vocabulary(job, pretrained, dataset.tokenizer)
    dataset = dataset.with_tokenizer(tokenizer)
    fitted = tracked_fit(  # 4. MLflow run (its input: the pre-trained model), Ray, train from its weights, log it
        job,
        dataset,
        default_run_name(job),
        tags={"init_from": source.text, "pretrain_run_id": source.run_id or ""},
        init_weights=weights,
        params=vocabulary_params(pretrained, added),
        fields=validation_field_sheet(dataset.table, job.data.val_images),  # a synthetic crawl's
    )
    report, registration = evaluate_and_register(  # 5. scored on the gate split, 6. behind the champion gate
        job,
        dataset,
        fitted.run_id,
        run_name=new_run_name(f"evaluate-{job.tracking.gate_split}"),
        tags={"model_source": fitted.run_id},
        parent_run_id=fitted.run_id,
        eval_images=args.eval_images,
        register=not args.no_register,
    )
    print(report.table(f"fine-tuned {fitted.run_id}, {job.tracking.gate_split}"))
    if registration is not None:
        print(registration.summary())
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
