"""Train and evaluate the paper's Table 2 and Table 3 variants on the synthetic benchmark.

    python flows/ablate.py --out docs/ablation.md                   # 9 variants x seeds 0, 1, 2
    python flows/ablate.py --variants baseline context --seeds 0 --set train.steps=50
    python flows/ablate.py --from-run PARENT_RUN_ID --out docs/ablation.md  # rebuild the table only

Every variant gets the same budget: train.steps of pre-training, then --finetune-steps of generation
fine-tuning. Every variant and seed is a nested MLflow run under one parent; the table (ours with the
spread over seeds, the paper's numbers beside, the orderings judged seed by seed) goes to --out and to
the parent run. bench/ablation_bench.py runs the same study on one device without Ray or MLflow.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from components.cli import run
from components.cluster import init_ray
from components.config import job_parser, parse_job
from components.data.prepare import prepare_dataset
from components.evaluation.ablation import VARIANTS


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__, default_preset="ablation")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--finetune-steps", type=int, default=None, help="default: a third of train.steps")
    parser.add_argument("--eval-images", type=int, default=None, help="val images to score (default: all)")
    parser.add_argument("--out", type=Path, default=Path("docs/ablation.md"))
    parser.add_argument("--from-run", metavar="RUN_ID", help="rebuild the table from a finished ablation's parent run")
    args = parser.parse_args(argv)
    job = parse_job(args, task="pretrain")  # 1. config, validated
    # torch, Ray and MLflow load from here on: --help and a bad config answer at once
    from components.evaluation.oracle import split_examples, validation_field_sheet, variant_ceilings
    from components.tracking.runs import job_run, new_run_name
    from components.training.ablation import log_table, run_ablation, setting_text, table_from_run

    if args.from_run:
        return write_table(args.out, table_from_run(args.from_run, job.tracking.tracking_uri))
    job, dataset = prepare_dataset(job)  # 2. data, prepared once
    finetune_steps = args.finetune_steps or max(1, job.train.steps // 3)
    with job_run(job, new_run_name("ablate"), tags={"ablation": "parent"}) as parent:  # 3. tracking: the parent
        init_ray(job)  # 4. every variant, every seed
        variants = [VARIANTS[name] for name in args.variants]
        scored = None if None in (args.eval_images, job.data.val_images) else max(args.eval_images, job.data.val_images)
        fields = validation_field_sheet(dataset.table, scored)  # validation's and the evaluation's val images
        trained = (job, dataset, parent, variants, args.seeds, finetune_steps, args.eval_images, fields)
        results, human = run_ablation(*trained)
        command = "python flows/ablate.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        setting = setting_text(args.preset, job, finetune_steps, args.eval_images)
        oracles = {v.name: v.oracle for v in variants}  # each variant's ceiling on the scored val images
        ceilings = variant_ceilings(split_examples(dataset.table, "val", args.eval_images), oracles)
        table = log_table(parent, results, human, args.seeds, command, setting, ceilings)  # 5. the table
    return write_table(args.out, table)


def write_table(out: Path, table: str) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, "utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
