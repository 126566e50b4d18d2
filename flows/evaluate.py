"""Evaluate a CapOnImage model on a split: the paper's metrics and pictures, logged to MLflow.

    python flows/evaluate.py --model RUN_ID                     # a training run (its checkpoint artifact)
    python flows/evaluate.py --model latest --split test --beam 3
    python flows/evaluate.py --model models:/caponimage@champion
    python flows/evaluate.py --model s3://bucket/ray/.../checkpoint_00200000 --set data.dataset=/data/CapOnImage2M

Batch inference runs over Ray Data. Logged: BLEU@1-4, METEOR, CIDEr, Div@1/2 with the human row,
length against aspect ratio (table and plot), caption-type maps, qualitative sheets and every
prediction (image id, box, caption).
"""

from __future__ import annotations

import sys

from components.cli import run
from components.cluster import init_ray
from components.config import job_parser, parse_job


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument(
        "--model", required=True, help="MLflow run id, 'latest', runs:/ or models:/ URI, or checkpoint folder/URI"
    )
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    parser.add_argument("--sheets", type=int, default=8, help="qualitative sheets and type maps to draw")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    args = parser.parse_args(argv)
    job = parse_job(args, task="evaluate")  # 1. config, validated
    # torch, Ray and MLflow load from here on: --help and a bad config answer at once
    from components.data.prepare import prepare_dataset
    from components.evaluation.tracked_evaluation import evaluate_and_log
    from components.tracking.runs import new_run_name
    from components.tracking.sources import ModelSource

    source = ModelSource.resolve(args.model, job.tracking, latest_of="finetune", key="--model")  # 2. the model
    checkpoint = source.load_for_inference(job.tracking.tracking_uri)
    job, dataset = prepare_dataset(job.with_overrides(model=checkpoint.job["model"]), checkpoint.tokenizer)
    init_ray(job)  # 3. batch inference over Ray Data, 4. metrics, 5. logged in their own run
    report = evaluate_and_log(
        job,
        dataset,
        checkpoint,
        args.split,
        run_name=new_run_name(f"evaluate-{args.split}"),
        parent_run_id=source.run_id,
        tags={"model_source": source.text, "beam": str(args.beam)},
        beam_size=args.beam,
        limit=args.limit,
        sheets=args.sheets,
        meteor=not args.no_meteor,
    ).report
    print(report.table(f"{args.split}, {report.images} images, {report.boxes} boxes"))
    print(
        f"length vs aspect ratio r = {report.length_aspect_r:.2f} (ground truth {report.human_length_aspect_r:.2f}); "
        f"caption-type agreement {100 * report.type_agreement:.1f}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
