"""Evaluate a CapOnImage model on a split: the paper's metrics and pictures, logged to MLflow.

    python flows/evaluate.py --model RUN_ID                     # a training run (its checkpoint artifact)
    python flows/evaluate.py --model latest --split test --beam 3
    python flows/evaluate.py --model s3://bucket/ray/.../checkpoint_00200000 --dataset /data/CapOnImage2M

Batch inference runs over Ray Data. Logged: BLEU@1-4, METEOR, CIDEr, Div@1/2 with the human row,
length against aspect ratio (table and plot), caption-type maps, qualitative sheets and every
prediction (image id, box, caption).
"""

from __future__ import annotations

import sys
from dataclasses import replace

from components.cli import run
from components.evaluation.predict import predict_split
from components.evaluation.report import evaluate_rows
from components.model.config import ModelConfig
from components.tracking.evaluation import log_evaluation
from components.tracking.runs import RUN_ID, latest_run_id, resolve_checkpoint, start_run
from components.training.arguments import job_parser, parse_job
from components.training.checkpoint import load_checkpoint
from components.training.job import init_ray, new_run_name


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--model", required=True, help="MLflow run id, 'latest', runs:/ URI or checkpoint folder/URI")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    parser.add_argument("--sheets", type=int, default=8, help="qualitative sheets and type maps to draw")
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    args = parser.parse_args(argv)
    job = parse_job(args, task="evaluate")  # 1. config, validated
    tracking = job.tracking.tracking_uri
    source = latest_run_id(tracking, job.tracking.experiment, "finetune") if args.model == "latest" else args.model
    checkpoint = load_checkpoint(resolve_checkpoint(source, tracking), with_training_state=False)
    model_config = ModelConfig.from_dict(checkpoint.job["model"])
    job = replace(job, model=model_config)
    parent = source if RUN_ID.match(source) else None
    start_run(
        job,
        new_run_name(f"evaluate-{args.split}"),
        parent_run_id=parent,  # 2. tracking
        tags={"model_source": source, "split": args.split, "beam": str(args.beam)},
    )
    import mlflow
    import ray

    try:
        init_ray(job)  # 3. batch inference over Ray Data
        rows = predict_split(
            job.data.dataset,
            args.split,
            model_config,
            ray.put(checkpoint.model_state),
            checkpoint.tokenizer,
            beam_size=args.beam,
            limit=args.limit,
            images_root=job.data.images_root,
            decode_actors=job.data.decode_actors,
            use_gpu=job.ray.use_gpu,
        )
        report = evaluate_rows(rows, checkpoint.tokenizer.mode, meteor=not args.no_meteor)  # 4. metrics
        lang = "zh" if checkpoint.tokenizer.mode == "char" else "en"
        log_evaluation(
            report,
            rows,
            dataset=job.data.dataset,
            split=args.split,
            images_root=job.data.images_root,
            lang=lang,
            sheets=args.sheets,
            title=f"{args.split} ({report.images} images)",
        )  # 5. log
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()
    print(report.table(f"{args.split}, {report.images} images, {report.boxes} boxes"))
    print(
        f"length vs aspect ratio r = {report.length_aspect_r:.2f} (ground truth {report.human_length_aspect_r:.2f}); "
        f"caption-type agreement {100 * report.type_agreement:.1f}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
