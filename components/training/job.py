"""The driver side shared by every training flow: dataset, vocabulary, Ray, the TorchTrainer, MLflow.

Flows call these in order (``prepare_data`` -> ``init_ray`` -> ``fit``); nothing here runs at import.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from components import storage
from components.data.pipeline import EncodeSpec, build_dataset, make_tally, read_index
from components.data.tokenizer import Tokenizer, guess_mode
from components.errors import ConfigError
from components.training.config import JobConfig

log = logging.getLogger(__name__)


def prepare_data(job: JobConfig) -> JobConfig:
    """Make sure the dataset exists (building the synthetic one if allowed), before Ray starts."""
    dataset = job.data.dataset
    if storage.exists(storage.join(dataset, "ref_captions.json")):
        return job
    if not job.data.build_if_missing or storage.is_uri(dataset):
        raise ConfigError("data.dataset", f"{dataset} is not a dataset folder (no ref_captions.json)")
    from components.data.synthetic.build import SyntheticSpec, build_release

    log.info("building the synthetic dataset in %s (%d images)", dataset, job.data.synthetic_images)
    spec = SyntheticSpec(job.data.synthetic_images, job.data.synthetic_seed, job.data.synthetic_lang)
    build_release(spec, dataset, workers=os.cpu_count() or 1)
    return job


def load_vocabulary(dataset: str) -> Tokenizer:
    """The dataset's ``word2int.json``, or a vocabulary built from its training split."""
    vocabulary = storage.join(dataset, "word2int.json")
    if storage.exists(vocabulary):
        return Tokenizer.from_vocabulary(json.loads(storage.read_bytes(vocabulary).decode("utf-8")))
    records = [json.loads(row["record"]) for row in read_index(dataset, "train") if row["record"]]
    texts = [t for r in records for t in (*r.get("ocr_txts", []), r.get("info", "")) if isinstance(t, str)]
    return Tokenizer.build(texts, mode=guess_mode(texts))


def with_vocabulary(job: JobConfig, tokenizer: Tokenizer) -> JobConfig:
    return replace(job, model=replace(job.model, vocab_size=len(tokenizer)))


def init_ray(job: JobConfig) -> None:
    """Attach to ``ray.address`` or ``RAY_ADDRESS`` (ray job submit), else start a local cluster."""
    import ray

    if ray.is_initialized():
        return
    if job.ray.address:
        ray.init(address=job.ray.address)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        # Logical CPUs are over-declared on small machines: train workers and decode actors share cores.
        ray.init(address="local", num_cpus=max(job.ray.local_num_cpus, os.cpu_count() or 1))


def new_run_name(task: str) -> str:
    return f"{task}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def fit(
    job: JobConfig,
    tokenizer: Tokenizer,
    run_name: str,
    run_id: str | None = None,
    init_weights: Any = None,
    extra_callbacks: tuple = (),
) -> tuple[Any, dict[str, Any]]:
    """Build the datasets and the TorchTrainer, train, and return (result, skipped-record counts).

    ``extra_callbacks``: more Ray Train ``UserCallback``s beside the MLflow one (Tune's, in a sweep).
    """
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from components.tracking.runs import MlflowReportCallback
    from components.training.loop import train_loop_per_worker

    spec = EncodeSpec.for_model(job.model, job.data.max_boxes)
    tally = make_tally(f"rejections-{run_name}")
    common = dict(images_root=job.data.images_root, actors=job.data.decode_actors, tally=tally)
    datasets = {
        "train": build_dataset(job.data.dataset, "train", tokenizer, spec, shuffle=True, **common),
        "val": build_dataset(job.data.dataset, "val", tokenizer, spec, limit=job.data.val_images, **common),
    }
    callbacks = [MlflowReportCallback(job.tracking.tracking_uri, run_id)] if run_id else []
    callbacks += list(extra_callbacks)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "job": job.as_dict(),
            "word2int": tokenizer.word2int,
            "mode": tokenizer.mode,
            "init_weights": init_weights,
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
    )
    result = trainer.fit()
    rejections = ray.get(tally.report.remote())
    ray.kill(tally)
    return result, rejections


def finetune_job(job: JobConfig, pretrained_job: dict[str, Any]) -> JobConfig:
    """Fine-tuning keeps the pre-trained architecture (and so its vocabulary) and trains generation only."""
    model = dict(pretrained_job["model"])
    return job.with_overrides(model=model, train={"generation_per_matching": (1, 0)})
