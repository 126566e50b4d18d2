"""The Ray Train worker loop, shared by pre-training, fine-tuning, tuning and retraining.

``train_loop_per_worker(config)`` runs on every DDP worker: it builds the model, resumes from Ray
Train's last checkpoint (or warm-starts from ``init_weights``), streams its shard of the Ray Data
pipeline, and reports metrics every ``log_every`` steps, validation every ``val_every`` and a
checkpoint every ``checkpoint_every`` (every worker reports at the same steps, as Ray Train requires).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import ray.train
import ray.train.torch
import torch
from ray.data.collate_fn import NumpyBatchCollateFn
from ray.train.v2._internal.execution import context as train_context

from components.config import JobConfig
from components.data.record.tokenizer import Tokenizer
from components.errors import DatasetFormatError
from components.metric_names import NEGATIVE_LEVELS, NEGATIVES, TRAIN, VAL_SUBSET, metric_key, named
from components.model.batches import ImageCaptions, collate
from components.model.build import build_model
from components.model.capon import ModelBatch
from components.model.checkpoint import load_checkpoint, save_checkpoint
from components.training.steps import StepRunner, check_finite, prepare_for_training, unwrap
from components.training.validation import validate

log = logging.getLogger("caponimage.train")


class InjectedFailure(RuntimeError):
    """Raised once by ``train.fail_at_step`` to test recovery from a worker failure."""


class ModelCollate(NumpyBatchCollateFn):
    """Rows of images to ``(ModelBatch, [ImageCaptions])``, in Ray Data's prefetch threads; with
    ``pin``, in page-locked memory, so that the copy to the GPU does not block the step."""

    def __init__(self, pin: bool = False):
        super().__init__()
        self.pin = pin

    def __call__(self, rows: dict[str, np.ndarray]) -> tuple[ModelBatch, list[ImageCaptions]]:
        batch, images = collate(rows)
        return (batch.pin_memory() if self.pin else batch), images


def endless_batches(
    shard, images_per_batch: int, shuffle_buffer: int, seed: int, prefetch: int = 1, pin: bool = False
) -> Iterator[tuple[ModelBatch, list[ImageCaptions]]]:
    """Epoch after epoch of a worker's shard, collated; each epoch in a new order."""
    epoch = 0
    while True:
        produced = 0
        for collated in shard.iter_torch_batches(
            batch_size=images_per_batch,
            collate_fn=ModelCollate(pin),
            drop_last=True,
            local_shuffle_buffer_size=shuffle_buffer or None,
            local_shuffle_seed=seed + epoch if shuffle_buffer else None,
            prefetch_batches=prefetch,
        ):
            produced += 1
            yield collated
        if produced == 0:
            raise DatasetFormatError(
                f"the training split gave this worker no batch of {images_per_batch} images: "
                "use more images, fewer workers or a smaller train.images_per_batch"
            )
        epoch += 1


def _warm_start(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Start from pre-trained weights (fine-tuning); optimiser, schedule and step start afresh."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"the warm-start checkpoint has weights this model lacks: {unexpected[:5]}")
    if missing:
        log.warning("warm start: %d weights keep their initial values (%s ...)", len(missing), missing[:3])


class StepWindow:
    """Averages of step metrics since the last report, the training rate over those steps alone
    (validation and checkpoints are not training: ``restart`` after them), and an ETA from the whole
    run's pace so far (validation and checkpoints included, as the time left will include them)."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.values: dict[str, list[float]] = defaultdict(list)
        self.begun = self.started = clock()
        self.steps_done = 0

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.values[key].append(value)
        self.steps_done += 1

    def restart(self) -> None:
        """The next window's clock starts now (after a validation or a checkpoint)."""
        self.started = self.clock()

    def summary(self, step: int, total: int) -> dict[str, float]:
        now = self.clock()
        elapsed = now - self.started
        out = {k: float(np.mean(v)) for k, v in self.values.items() if k != "boxes"}
        steps = len(self.values["boxes"])
        out["boxes_per_s"] = sum(self.values["boxes"]) / elapsed if elapsed > 0 else 0.0
        out["seconds_per_step"] = elapsed / max(steps, 1)
        out["eta_s"] = (now - self.begun) / max(self.steps_done, 1) * (total - step)
        self.values.clear()
        self.started = now
        return out


# The log line's few figures (every metric goes to MLflow): losses, rate, and the validation scores.
LOG_LINE = (
    metric_key(TRAIN, "loss_generation"),
    metric_key(TRAIN, "loss_matching"),
    metric_key(TRAIN, "boxes_per_s"),
    metric_key(VAL_SUBSET, "loss_generation"),
    metric_key(VAL_SUBSET, "CIDEr"),
    metric_key(VAL_SUBSET, "field_accuracy_all"),
)


def log_line(step: int, total: int, metrics: dict[str, float]) -> str:
    """``step 90/300, 6 min 43 s left: train/loss_generation=2.72 ... val_subset/CIDEr=94.7``."""
    left = round(metrics.get("eta_s", 0.0))
    figures = " ".join(f"{k}={metrics[k]:.4g}" for k in LOG_LINE if k in metrics)
    return f"step {step}/{total}, {left // 60} min {left % 60} s left: {figures}"


def train_loop_per_worker(config: dict) -> None:
    # Ray Train logs every report at INFO; the loop's own line per log step says the same, once.
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)  # Ray names that logger by its file
    job = JobConfig.from_dict(config["job"])
    train = job.train
    tokenizer: Tokenizer = config["tokenizer"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        torch.set_num_threads(train.torch_threads)
    torch.manual_seed(train.seed)

    model = build_model(job.model)
    checkpoint = ray.train.get_checkpoint()
    restored = None
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            restored = load_checkpoint(folder)
        model.load_state_dict(restored.model_state)
    elif config.get("init_weights") is not None:
        _warm_start(model, ray.get(config["init_weights"]))  # a state dict in the object store
    sits_out = prepare_for_training(model, train)  # before the optimiser and DDP see it
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": sits_out})
    runner = StepRunner(model, train, device, rank)
    start = 0
    if restored is not None and restored.training_state is not None:
        runner.load_state_dict(restored.training_state["runner"])
        start = restored.step
        log.info("rank %d resumed from step %d", rank, start)

    shard = ray.train.get_dataset_shard("train")
    batches = endless_batches(
        shard,
        train.images_per_batch,
        job.data.shuffle_buffer,
        train.seed + rank,
        job.data.prefetch_batches,
        pin=runner.non_blocking,  # pinned where the runner copies without blocking
    )
    window = StepWindow()
    matching = train.generation_per_matching[1] > 0  # fine-tuning trains and scores generation only
    for step in range(start + 1, train.steps + 1):
        if train.fail_at_step == step and restored is None and rank == 0:
            raise InjectedFailure(f"injected failure at step {step} (train.fail_at_step)")
        batch, images = next(batches)
        step_metrics = runner.train_step(step, batch, images)
        check_finite(step_metrics, step, train.lr)
        window.add(step_metrics)
        report = step % train.log_every == 0 or step == train.steps
        validate_now = step % train.val_every == 0 or step == train.steps
        save_now = step % train.checkpoint_every == 0 or step == train.steps
        if not (report or validate_now or save_now):
            continue
        summary = window.summary(step, train.steps)
        summary["boxes_per_s"] *= world  # every rank trains the same number of steps
        metrics = {"step": step, "eta_s": summary.pop("eta_s"), "resumed_from": float(start), **named(TRAIN, summary)}
        probabilities = runner.probabilities(step) if matching else None
        if matching:
            metrics.update(named(NEGATIVES, dict(zip(NEGATIVE_LEVELS, probabilities, strict=True))))
        if validate_now:
            val_rows = ray.train.get_dataset_shard("val").iter_batches(
                batch_size=train.images_per_batch, batch_format="numpy"
            )
            limit = job.model.max_caption_tokens
            scores = validate(
                model, val_rows, tokenizer, probabilities, train.positive_rate, device, limit, config.get("fields")
            )
            metrics.update(named(VAL_SUBSET, scores))
        if rank == 0:
            log.info("%s", log_line(step, train.steps, metrics))
        _report(metrics, save_now, rank, unwrap(model), runner, step, config, tokenizer)
        window.restart()  # the time validation and the checkpoint took is not training time


def _report(
    metrics, save_now: bool, rank: int, model, runner: StepRunner, step: int, config: dict, tokenizer: Tokenizer
) -> None:
    if not save_now:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            state = {"step": step, "runner": runner.state_dict()}
            save_checkpoint(folder, model.state_dict(), state, config["job"], tokenizer)
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"checkpoint_{step:08d}")
