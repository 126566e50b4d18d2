"""One optimisation step, shared by every flow (pretrain, finetune, tune, retrain) and the benchmarks.

Plain PyTorch: no Ray here. The task of a step (generation or matching, 3:1) and the matching
negatives' level probabilities are functions of the global step, computed right here where the step
is known.
"""

from __future__ import annotations

import math
import random
from collections import deque
from contextlib import nullcontext
from dataclasses import replace

import torch
import torch.nn.functional as F

from components.config import TrainSection
from components.data.record.tokenizer import PAD
from components.model.batches import ImageCaptions, pad_boxes
from components.model.capon import ModelBatch
from components.training.curriculum import curriculum_step, level_probabilities
from components.training.matching import matching_batch
from components.training.schedule import task_for_step, warmup_inverse_sqrt

POOL_SIZE = 512  # recent captions of other images, for Level I negatives in single-image batches


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def prepare_for_training(model: torch.nn.Module, train: TrainSection) -> bool:
    """Ready the model before the optimiser and DDP see it: freeze the matching head when no step
    trains matching, and lay the backbone out channels-last when asked. Returns whether some
    trainable parameter still sits out whole steps, so that DDP must look for unused parameters at
    every step (a pass over the graph): only a model without image and locations, whose spatial
    tables serve nothing. The matching head, which generation steps skip, and the info pointer,
    which matching steps skip, are kept in those graphs by ``StepRunner`` instead."""
    inner = unwrap(model)
    if train.generation_per_matching[1] == 0:
        inner.match_head.requires_grad_(False)
    if train.channels_last and inner.backbone is not None:
        inner.backbone.to(memory_format=torch.channels_last)
    return not (inner.use_image or inner.use_locations)


def compiled(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` with static shapes. Each task and box bucket is one graph; the default limit
    of graphs per function (8) would send the rest back to eager without a word."""
    import torch._dynamo

    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    setattr(torch._dynamo.config, limit, max(64, getattr(torch._dynamo.config, limit)))
    return torch.compile(model, dynamic=False)


def use_tf32() -> None:
    """TF32 tensor cores for the float32 matmuls and convolutions left outside bfloat16 autocast."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def generation_loss(logits: torch.Tensor, captions: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over real caption tokens, and how many there were."""
    targets = captions[:, 1:]  # (N, Lc-1)
    logits = logits[:, :-1].float()  # (N, Lc-1, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD)
    return loss, int((targets != PAD).sum())


class StepRunner:
    """The optimiser, its schedule and the matching sampler's state around a model; ``train_step``
    is one update. The speed switches of ``train`` (compile, box buckets, fused Adam, channels-last,
    TF32, non-blocking copies) change how fast a step runs, not what it computes."""

    def __init__(self, model: torch.nn.Module, train: TrainSection, device: torch.device, rank: int = 0):
        self.model, self.train_config, self.device = model, train, device
        inner = unwrap(model)
        backbone = [p for n, p in inner.named_parameters() if n.startswith("backbone") and p.requires_grad]
        rest = [p for n, p in inner.named_parameters() if not n.startswith("backbone") and p.requires_grad]
        groups = [{"params": rest, "lr": train.lr}]
        if backbone:
            groups.append({"params": backbone, "lr": train.backbone_lr})
        self.optimizer = torch.optim.Adam(
            groups, betas=train.betas, eps=train.eps, weight_decay=train.weight_decay, fused=train.fused_adam or None
        )
        schedules = [lambda step: warmup_inverse_sqrt(step + 1, train.warmup_steps)]  # LambdaLR counts from 0
        if backbone:
            schedules.append(lambda step: 1.0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedules)
        self.rng = random.Random(train.seed * 1000 + rank)
        self.pool: deque = deque(maxlen=POOL_SIZE)
        on_gpu = device.type == "cuda"
        use_amp = train.mixed_precision and on_gpu
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext
        self.forward = compiled(model) if train.compile else model
        self.non_blocking = train.pin_memory and on_gpu
        if train.tf32 and on_gpu:
            use_tf32()
        # Each task keeps the other task's head in the graph with a zero weight (the matching head in
        # generation steps, the info pointer in matching steps), so that DDP gets a gradient for every
        # parameter at every step and needs no search for unused ones; that head's gradient is dropped
        # before the optimiser, which so skips it exactly as if it sat out.
        pointer = [] if inner.pointer is None else list(inner.pointer.parameters())
        self.sitting_out = {
            "generation": [p for p in inner.match_head.parameters() if p.requires_grad],
            "matching": [p for p in pointer if p.requires_grad],
        }

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly: optimiser, schedule, sampling state."""
        version, state, gauss = self.rng.getstate()
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": [version, list(state), gauss],
            "pool": [list(c) for c in self.pool],
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.pool.clear()
        self.pool.extend(tuple(c) for c in state["pool"])

    def probabilities(self, step: int) -> tuple[float, float, float]:
        """(p1, p2, p3) of the negative levels at global ``step`` (see ``curriculum_step``)."""
        return level_probabilities(self.train_config.negatives, curriculum_step(self.train_config, step))

    def to_device(self, batch: ModelBatch) -> ModelBatch:
        batch = batch.to(self.device, non_blocking=self.non_blocking)
        if self.train_config.channels_last:
            batch = replace(batch, images=batch.images.contiguous(memory_format=torch.channels_last))
        return batch

    def train_step(self, step: int, batch: ModelBatch, images: list[ImageCaptions]) -> dict[str, float]:
        """One update at global ``step`` (1-based) on ``batch`` (on any device); metrics of this step."""
        config = self.train_config
        task = task_for_step(step - 1, config.generation_per_matching)
        batch = self.to_device(batch)
        metrics: dict[str, float] = {"boxes": float(batch.num_boxes)}
        self.model.train()
        with self.autocast():
            if task == "generation":
                padded = pad_boxes(batch, config.box_bucket)
                loss, _ = generation_loss(self.forward(padded, task="generation").logits, padded.captions)
            else:
                matched, _ = matching_batch(
                    batch, images, self.probabilities(step), self.rng, config.positive_rate, list(self.pool)
                )
                out = self.forward(pad_boxes(matched, config.box_bucket), task="matching")
                logits = out.match_logits[: batch.num_boxes].float()  # the real boxes, not the padding
                labels = matched.extras["labels"]
                loss = F.binary_cross_entropy_with_logits(logits, labels)
                metrics["matching_accuracy"] = float(((logits > 0).float() == labels).float().mean())
        loss = loss + sum(0.0 * p.sum() for p in self.sitting_out[task])  # in the graph, no gradient
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for p in self.sitting_out[task]:
            p.grad = None
        if config.grad_clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        self.pool.extend(c for image in images for c in image.captions)
        metrics[f"loss_{task}"] = float(loss.detach())
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics


class NonFiniteLoss(RuntimeError):
    """A loss that became NaN or infinite: no later step can recover from it."""


def check_finite(metrics: dict[str, float], step: int, lr: float) -> None:
    """``NonFiniteLoss`` naming the step and the losses when any loss of a step is NaN or infinite."""
    bad = {k: v for k, v in metrics.items() if k.startswith("loss_") and not math.isfinite(v)}
    if bad:
        losses = ", ".join(f"{k} = {v}" for k, v in bad.items())
        raise NonFiniteLoss(
            f"{losses} at step {step}: training stopped (lower train.lr, now {lr:g}, or check the data); "
            "the checkpoints before this step are intact"
        )
