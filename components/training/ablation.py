"""Running the paper's ablation: every variant and seed trained and scored in nested MLflow runs.

The variants and the table are ``components.evaluation.ablation`` (pure); this module trains them
with the shared tracked fit, scores them on val, and reads a finished ablation back from MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence

import ray

from components.config import JobConfig
from components.data.release.dataset import PreparedDataset
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
from components.tracking.runs import TrackedRun, new_run_name, run_record
from components.training.tracked_fit import tracked_fit

Results = dict[str, list[dict[str, float]]]


def train_variant(
    job: JobConfig,
    dataset: PreparedDataset,
    parent: TrackedRun,
    name: str,
    weights: dict | None = None,
    fields: FieldSheet | None = None,
) -> dict:
    """One nested MLflow run around one training job; the final checkpoint's weights (logged as files:
    a variant is compared, never served)."""
    tags = {"ablation_variant": name}
    fitted = tracked_fit(
        job,
        dataset,
        name,
        ray_run_name=new_run_name(name),
        parent_run_id=parent.run_id,
        tags=tags,
        init_weights=weights,
        log_model=False,
        fields=fields,
    )
    return fitted.final_weights()


def train_and_evaluate(
    job: JobConfig,
    variant: Variant,
    seed: int,
    dataset: PreparedDataset,
    parent: TrackedRun,
    finetune_steps: int,
    eval_images: int | None,
    fields: FieldSheet | None = None,
) -> dict[str, float]:
    """A variant pre-trained, fine-tuned (every variant alike: the same budget) and scored on val;
    its scores go to the parent run as ``<variant>/s<seed>_<metric>`` (``fields``: val's field sheet,
    for field accuracy in validation and in the scores)."""
    job = job.with_overrides(model=variant.model, train=variant.train_overrides(seed))
    weights = train_variant(job, dataset, parent, f"{variant.name}-s{seed}", fields=fields)
    finetune_train = Variant.finetune_overrides(finetune_steps)
    finetune = job.with_overrides(task="finetune", init_from="ablation", train=finetune_train)
    weights = train_variant(finetune, dataset, parent, f"{variant.name}-s{seed}-finetune", weights, fields)
    rows = predict_split(
        dataset,
        "val",
        job.model,
        ray.put(weights),
        limit=eval_images,
        decode_actors=job.data.decode_actors,
        seed=seed,
    )
    report = evaluate_rows(rows, dataset.tokenizer.mode, fields=fields)
    parent.log_metrics({run_metric_key(variant.name, seed, k): v for k, v in report.metrics().items()})
    print(
        f"{variant.name} seed {seed}: "
        + ", ".join(f"{k} {v:.1f}" for k, v in report.metrics().items() if k in ("CIDEr", "BLEU-4", "Div-2"))
    )
    return {**report.scores, **report.generated_diversity, **report.fields, "human": report.human_diversity}


def run_ablation(
    job: JobConfig,
    dataset: PreparedDataset,
    parent: TrackedRun,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    finetune_steps: int,
    eval_images: int | None,
    fields: FieldSheet | None = None,
) -> tuple[Results, dict[str, float]]:
    """Every variant for every seed, nested under the ``parent`` run: (scores per variant, human row)."""
    results: Results = {}
    human: dict[str, float] = {}
    for seed in seeds:
        for variant in variants:
            metrics = train_and_evaluate(job, variant, seed, dataset, parent, finetune_steps, eval_images, fields)
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
    parent: TrackedRun,
    results: Results,
    human: dict[str, float],
    seeds: Sequence[int],
    command: str,
    setting: str,
    ceilings: dict[str, float] | None = None,
) -> str:
    """The markdown table into the ``parent`` run, with the tags and the ceilings' metrics that
    rebuild it (``table_from_run``)."""
    parent.set_tags({"ablation.command": command, "ablation.setting": setting})
    parent.log_metrics({ceiling_metric_key(name): value for name, value in (ceilings or {}).items()})
    table = markdown(results, human, seeds, command, setting, ceilings)
    parent.log_text(table, "ablation.md")
    return table


def table_from_run(run_id: str, tracking_uri: str) -> str:
    """The markdown table of a finished ablation, from its parent run's metrics and tags."""
    data = run_record(tracking_uri, run_id, key="from_run")
    tags = data.tags
    if tags.get("ablation") != "parent":
        raise ConfigError("from_run", f"run {run_id} is not an ablation's parent run (no tag ablation=parent)")
    results, human, seeds = results_from_metrics(data.metrics)
    command = tags.get("ablation.command", "python flows/ablate.py")
    setting = tags.get("ablation.setting", "Setting: not recorded.")
    return markdown(results, human, seeds, command, setting, ceilings_from_metrics(data.metrics))
