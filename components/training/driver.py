"""The driver side of a training job on Ray Train: the datasets, the ``TorchTrainer``, ``fit``.

The worker side is ``components.training.worker``; tracking around a fit is ``components.training.tracked_fit``.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from components.config import JobConfig
from components.data.pipeline.stream import build_dataset, make_tally
from components.data.prepare import with_vocabulary
from components.data.record.tokenizer import Tokenizer
from components.data.release.dataset import PreparedDataset
from components.data.transforms.encoding import EncodeSpec
from components.errors import TrainingDiverged
from components.evaluation.fields import FieldSheet
from components.model.checkpoint import LoadedCheckpoint, grow_word_table
from components.tracking.callback import MlflowReportCallback
from components.training.steps import NonFiniteLoss
from components.training.worker import train_loop_per_worker

log = logging.getLogger(__name__)


def fit(
    job: JobConfig,
    dataset: PreparedDataset,
    run_name: str,
    run_id: str | None = None,
    init_weights: ray.ObjectRef | None = None,
    extra_callbacks: tuple = (),
    fields: FieldSheet | None = None,
) -> tuple[ray.train.Result, dict[str, Any]]:
    """Build the Ray Datasets of ``dataset``'s train and val splits and the TorchTrainer, train, and
    return (result, skipped-record counts).

    ``init_weights``: a state dict in the object store to warm-start from (fine-tuning).
    ``extra_callbacks``: more Ray Train ``UserCallback``s beside the MLflow one (Tune's, in a sweep).
    ``fields``: the val subset's field sheet; validation then reports field accuracy.
    """
    spec = EncodeSpec.for_model(job.model, job.data.max_boxes, seed=job.train.seed)
    tally = make_tally(f"rejections-{run_name}")
    common = dict(actors=job.data.decode_actors, tally=tally)
    datasets = {
        "train": build_dataset(dataset, "train", spec, shuffle=True, seed=job.train.seed, **common),
        "val": build_dataset(dataset, "val", spec, limit=job.data.val_images, **common),
    }
    callbacks = [MlflowReportCallback(job.tracking.tracking_uri, run_id)] if run_id else []
    callbacks += list(extra_callbacks)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "job": job.as_dict(),
            "tokenizer": dataset.tokenizer,
            "init_weights": init_weights,
            "fields": fields,
        },
        scaling_config=ScalingConfig(
            num_workers=job.ray.num_workers,
            use_gpu=job.ray.use_gpu,
            resources_per_worker={"CPU": job.ray.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=job.ray.storage_path,
            failure_config=FailureConfig(max_failures=job.ray.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=job.ray.keep_checkpoints),
            callbacks=callbacks,
        ),
        datasets=datasets,
        dataset_config=_data_config(job.data.preserve_order),
    )
    try:
        result = trainer.fit()
        rejections = ray.get(tally.report.remote())
    except ray.train.TrainingFailedError as err:
        typed = diverged(err)
        if typed is None:
            raise
        raise typed from err
    finally:  # also after a failed fit: a later fit of this run name (a resume) gets a live tally of its own
        ray.kill(tally)
    return result, rejections


def diverged(err: Exception) -> TrainingDiverged | None:
    """A worker's ``NonFiniteLoss`` as the typed error a flow reports in one line (else None)."""
    for failure in getattr(err, "worker_failures", {}).values():
        if isinstance(failure, NonFiniteLoss) or "NonFiniteLoss" in str(failure):
            text = str(failure).strip().splitlines()[-1]
            return TrainingDiverged(text.split("NonFiniteLoss: ", 1)[-1])
    return None


def _data_config(preserve_order: bool) -> DataConfig:
    """Ray Train's default ingest options, with the images handed out in order when asked (the same
    seed then gives every worker the same batches in every run)."""
    options = DataConfig.default_ingest_options()
    options.preserve_order = preserve_order
    return DataConfig(execution_options=options)


def extend_vocabulary(
    job: JobConfig, start: LoadedCheckpoint, tokenizer: Tokenizer
) -> tuple[JobConfig, Tokenizer, dict, list[str]]:
    """Fine-tuning ``start`` on data whose vocabulary is ``tokenizer``: (the job, the vocabulary, the
    initial weights, the tokens added). When ``tokenizer`` is ``start``'s vocabulary with tokens
    appended (a dataset's vocabulary grows with its ingests), the model grows with it: a word-table row
    per new token (``grow_word_table``; the output is tied to the table), so the fine-tuned model can
    read and write them. Otherwise (another vocabulary altogether) ``start``'s own, unchanged."""
    if len(tokenizer) == len(start.tokenizer) or not tokenizer.extends(start.tokenizer):
        return with_vocabulary(job, start.tokenizer), start.tokenizer, start.model_state, []
    added = [tokenizer.int2word[i] for i in range(len(start.tokenizer), len(tokenizer))]
    log.info("the model's vocabulary grows by %d tokens to %d for the data's", len(added), len(tokenizer))
    weights = grow_word_table(start.model_state, len(tokenizer))
    return with_vocabulary(job, tokenizer), tokenizer, weights, added


def vocabulary_params(start: LoadedCheckpoint, added: list[str]) -> dict[str, str]:
    """What ``extend_vocabulary`` did, as a run's params."""
    return {
        "vocab_size_before": str(len(start.tokenizer)),
        "vocab_added": str(len(added)),
        "vocab_added_tokens": "".join(added)[:500] if start.tokenizer.mode == "char" else " ".join(added)[:500],
        "vocab_new_rows": "mean of the trained rows",
    }


def finetune_job(job: JobConfig, pretrained_job: dict[str, Any]) -> JobConfig:
    """Fine-tuning keeps the pre-trained architecture (and so its vocabulary) and trains generation only."""
    return job.with_overrides(model=dict(pretrained_job["model"]), train={"generation_per_matching": (1, 0)})
