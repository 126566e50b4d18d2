"""Running the paper's ablation: every variant and seed trained and scored in nested MLflow runs.

The variants and the table are ``components.evaluation.ablation`` (pure); this module trains them
with the shared tracked fit, scores them on val, and reads a finished ablation back from MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlflow
import ray
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.config import JobConfig
from components.data.tokenizer import Tokenizer
from components.errors import ConfigError
from components.evaluation.ablation import (
    Variant,
    ceiling_metric_key,
    ceilings_from_metrics,
    markdown,
    results_from_metrics,
    run_metric_key,
)
from components.evaluation.fields import FieldSheet
from components.evaluation.predict import predict_split
from components.evaluation.report import evaluate_rows
from components.redaction import redact
from components.tracking.runs import new_run_name
from components.training.tracked import tracked_fit

Results = dict[str, list[dict[str, float]]]


def train_variant(
    job: JobConfig, tokenizer: Tokenizer, name: str, weights: dict | None = None, fields: FieldSheet | None = None
) -> dict:
    """One nested MLflow run around one training job; the final checkpoint's weights."""
    tags = {"ablation_variant": name}
    fitted = tracked_fit(
        job, tokenizer, name, ray_run_name=new_run_name(name), tags=tags, init_weights=weights, fields=fields
    )
    return fitted.final_weights()


def train_and_evaluate(
    job: JobConfig,
    variant: Variant,
    seed: int,
    tokenizer: Tokenizer,
    finetune_steps: int,
    eval_images: int | None,
    fields: FieldSheet | None = None,
) -> dict[str, float]:
    """A variant pre-trained, fine-tuned (every variant alike: the same budget) and scored on val;
    its scores go to the parent run as ``<variant>_s<seed>_<metric>`` (``fields``: val's field sheet,
    for field accuracy in validation and in the scores)."""
    job = job.with_overrides(model=variant.model, train=variant.train_overrides(seed))
    weights = train_variant(job, tokenizer, f"{variant.name}-s{seed}", fields=fields)
    finetune_train = Variant.finetune_overrides(finetune_steps)
    finetune = job.with_overrides(task="finetune", init_from="ablation", train=finetune_train)
    weights = train_variant(finetune, tokenizer, f"{variant.name}-s{seed}-finetune", weights, fields)
    rows = predict_split(
        job.data.dataset,
        "val",
        job.model,
        ray.put(weights),
        tokenizer,
        limit=eval_images,
        decode_actors=job.data.decode_actors,
        seed=seed,
    )
    report = evaluate_rows(rows, tokenizer.mode, fields=fields)
    mlflow.log_metrics({run_metric_key(variant.name, seed, k): v for k, v in report.metrics().items()})
    print(
        f"{variant.name} seed {seed}: "
        + ", ".join(f"{k} {v:.1f}" for k, v in report.metrics().items() if k in ("CIDEr", "BLEU-4", "Div-2"))
    )
    return {**report.scores, **report.generated_diversity, **report.fields, "human": report.human_diversity}


def run_ablation(
    job: JobConfig,
    tokenizer: Tokenizer,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    finetune_steps: int,
    eval_images: int | None,
    fields: FieldSheet | None = None,
) -> tuple[Results, dict[str, float]]:
    """Every variant for every seed, inside the active (parent) run: (scores per variant, human row)."""
    results: Results = {}
    human: dict[str, float] = {}
    for seed in seeds:
        for variant in variants:
            metrics = train_and_evaluate(job, variant, seed, tokenizer, finetune_steps, eval_images, fields)
            human = metrics.pop("human")
            results.setdefault(variant.name, []).append(metrics)
    return results, human


def setting_text(preset: str, job: JobConfig, finetune_steps: int, eval_images: int | None) -> str:
    """The table's setting line: what was trained, how long, on how much."""
    return (
        f"Setting: preset `{preset}`, {job.train.steps} pre-training steps of "
        f"{job.train.images_per_batch} images x {job.ray.num_workers} worker(s) (matching variants: a "
        f"quarter of them matching, the paper's curriculum spread over those), then {finetune_steps} "
        f"generation fine-tuning steps for every variant, greedy decoding on "
        f"{'all' if eval_images is None else eval_images} val images."
    )


def log_table(
    results: Results,
    human: dict[str, float],
    seeds: Sequence[int],
    command: str,
    setting: str,
    ceilings: dict[str, float] | None = None,
) -> str:
    """The markdown table into the active (parent) run, with the tags and the ceilings' metrics that
    rebuild it (``table_from_run``)."""
    mlflow.set_tags({"ablation.command": command, "ablation.setting": setting})
    mlflow.log_metrics({ceiling_metric_key(name): value for name, value in (ceilings or {}).items()})
    table = markdown(results, human, seeds, command, setting, ceilings)
    mlflow.log_text(table, "ablation.md")
    return table


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
    setting = tags.get("ablation.setting", "Setting: not recorded.")
    return markdown(results, human, seeds, command, setting, ceilings_from_metrics(run.data.metrics))
