"""Train and evaluate the paper's Table 2 and Table 3 variants on the synthetic benchmark.

    python flows/ablate.py --seeds 0 1 --out docs/ablation.md       # about an hour on 2 cores
    python flows/ablate.py --variants baseline context --seeds 0 --set train.steps=50
    python flows/ablate.py --from-run PARENT_RUN_ID --out docs/ablation.md  # rebuild the table only

Every variant and seed is a nested MLflow run under one parent; the table (ours with the spread over
seeds, the paper's numbers beside) goes to --out and to the parent run.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import mlflow
import ray
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.cli import run
from components.errors import ConfigError
from components.evaluation.ablation import VARIANTS, Variant, markdown, results_from_metrics, run_metric_key
from components.evaluation.predict import predict_split
from components.evaluation.report import evaluate_rows
from components.tracking.runs import finish_run, log_results, redact, start_run
from components.training.arguments import job_parser, parse_job
from components.training.checkpoint import load_checkpoint
from components.training.config import JobConfig
from components.training.job import fit, init_ray, load_vocabulary, new_run_name, prepare_data, with_vocabulary

PAPER_STEPS = 200_000


def train(job: JobConfig, tokenizer, name: str, weights=None):
    """One nested MLflow run around one training job; the final checkpoint's weights."""
    run_id = start_run(job, name, tags={"ablation_variant": name})
    with finish_run(run_id) as outcome:
        result, skipped = fit(job, tokenizer, new_run_name(name), run_id, init_weights=weights)
        log_results(job, result, skipped, run_id)
        outcome.update(result=result)
    with result.checkpoint.as_directory() as folder:
        return load_checkpoint(folder, with_training_state=False).model_state


def train_and_evaluate(
    job: JobConfig, variant: Variant, seed: int, tokenizer, finetune_steps: int, eval_images: int | None
) -> dict[str, float]:
    scale = PAPER_STEPS / job.train.steps  # traverse the paper's whole curriculum in this run
    job = job.with_overrides(model=variant.model, train=variant.train_overrides(seed, scale))
    weights = train(job, tokenizer, f"{variant.name}-s{seed}")
    if variant.finetune:
        finetune = job.with_overrides(train={"generation_per_matching": (1, 0), "steps": finetune_steps})
        weights = train(
            finetune.with_overrides(task="finetune", init_from="ablation"),
            tokenizer,
            f"{variant.name}-s{seed}-finetune",
            ray.put(weights),
        )
    rows = predict_split(
        job.data.dataset,
        "val",
        job.model,
        ray.put(weights),
        tokenizer,
        limit=eval_images,
        decode_actors=job.data.decode_actors,
    )
    report = evaluate_rows(rows, tokenizer.mode)
    mlflow.log_metrics({run_metric_key(variant.name, seed, k): v for k, v in report.metrics().items()})
    print(
        f"{variant.name} seed {seed}: "
        + ", ".join(f"{k} {v:.1f}" for k, v in report.metrics().items() if k in ("CIDEr", "BLEU-4", "Div-2"))
    )
    return {**report.scores, **report.generated_diversity, "human": report.human_diversity}


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__, default_preset="ablation")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--finetune-steps", type=int, default=None, help="default: a third of train.steps")
    parser.add_argument("--eval-images", type=int, default=None, help="val images to score (default: all)")
    parser.add_argument("--out", type=Path, default=Path("docs/ablation.md"))
    parser.add_argument("--from-run", metavar="RUN_ID", help="rebuild the table from a finished ablation's parent run")
    args = parser.parse_args(argv)
    job = parse_job(args, task="pretrain")  # 1. config, validated
    if args.from_run:
        return write_table(args.out, table_from_run(args.from_run, job.tracking.tracking_uri))
    job = prepare_data(job)  # 2. data
    tokenizer = load_vocabulary(job.data.dataset)
    job = with_vocabulary(job, tokenizer)
    finetune_steps = args.finetune_steps or max(1, job.train.steps // 3)
    start_run(job, new_run_name("ablate"), tags={"ablation": "parent"})  # 3. tracking: the parent run
    with finish_run(mlflow.active_run().info.run_id):
        init_ray(job)  # 4. every variant, every seed
        results: dict[str, list[dict[str, float]]] = {}
        human: dict[str, float] = {}
        for seed in args.seeds:
            for name in args.variants:
                metrics = train_and_evaluate(job, VARIANTS[name], seed, tokenizer, finetune_steps, args.eval_images)
                human = metrics.pop("human")
                results.setdefault(name, []).append(metrics)
        command = "python flows/ablate.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        setting = (
            f"Setting: preset `{args.preset}`, {job.train.steps} pre-training steps of "
            f"{job.train.images_per_batch} images x {job.ray.num_workers} worker(s), {finetune_steps} "
            f"fine-tuning steps for matching variants, greedy decoding on "
            f"{'all' if args.eval_images is None else args.eval_images} val images."
        )
        mlflow.set_tags({"ablation.command": command, "ablation.setting": setting})
        table = markdown(results, human, args.seeds, command, setting)  # 5. the table
        mlflow.log_text(table, "ablation.md")
    return write_table(args.out, table)


def table_from_run(run_id: str, tracking_uri: str) -> str:
    """The markdown table of a finished ablation, from its parent run's metrics and tags."""
    try:
        run = MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException as err:
        raise ConfigError("from_run", f"no run {run_id} in {redact(tracking_uri)}") from err
    tags = run.data.tags
    if tags.get("ablation") != "parent":
        raise ConfigError("from_run", f"run {run_id} is not an ablation's parent run (no tag ablation=parent)")
    results, human, seeds = results_from_metrics(run.data.metrics)
    command = tags.get("ablation.command", "python flows/ablate.py")
    return markdown(results, human, seeds, command, tags.get("ablation.setting", "Setting: not recorded."))


def write_table(out: Path, table: str) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, "utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
