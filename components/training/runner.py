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

import torch
import torch.nn.functional as F

from components.config import TrainSection
from components.data.tokenizer import PAD
from components.model.batches import ImageCaptions
from components.model.capon import ModelBatch
from components.training.curriculum import level_probabilities
from components.training.matching import matching_batch
from components.training.schedule import task_for_step, warmup_inverse_sqrt

POOL_SIZE = 512  # recent captions of other images, for Level I negatives in single-image batches


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def prepare_for_tasks(model: torch.nn.Module, generation_per_matching: tuple[int, int]) -> bool:
    """Freeze the matching head when no step trains matching; then whether some trainable parameter
    still sits out a step (DDP must then look for unused parameters at every step, which costs a
    pass over the graph): generation steps of a mixed job skip the matching head, and a model
    without image and locations never uses its spatial tables."""
    inner = unwrap(model)
    generation, matching = generation_per_matching
    if matching == 0:
        inner.match_head.requires_grad_(False)
    return (generation > 0 and matching > 0) or not (inner.use_image or inner.use_locations)


def generation_loss(logits: torch.Tensor, captions: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over real caption tokens, and how many there were."""
    targets = captions[:, 1:]  # (N, Lc-1)
    logits = logits[:, :-1].float()  # (N, Lc-1, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD)
    return loss, int((targets != PAD).sum())


class StepRunner:
    def __init__(self, model: torch.nn.Module, train: TrainSection, device: torch.device, rank: int = 0):
        self.model, self.train_config, self.device = model, train, device
        backbone = [p for n, p in unwrap(model).named_parameters() if n.startswith("backbone") and p.requires_grad]
        rest = [p for n, p in unwrap(model).named_parameters() if not n.startswith("backbone") and p.requires_grad]
        groups = [{"params": rest, "lr": train.lr}]
        if backbone:
            groups.append({"params": backbone, "lr": train.backbone_lr})
        self.optimizer = torch.optim.Adam(groups, betas=train.betas, eps=train.eps, weight_decay=train.weight_decay)
        schedules = [lambda step: warmup_inverse_sqrt(step + 1, train.warmup_steps)]  # LambdaLR counts from 0
        if backbone:
            schedules.append(lambda step: 1.0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedules)
        self.rng = random.Random(train.seed * 1000 + rank)
        self.pool: deque = deque(maxlen=POOL_SIZE)
        use_amp = train.mixed_precision and device.type == "cuda"
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext

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
        """(p1, p2, p3) of the negative levels at global ``step`` (scaled by ``curriculum_scale``)."""
        return level_probabilities(self.train_config.negatives, round(step * self.train_config.curriculum_scale))

    def train_step(self, step: int, batch: ModelBatch, images: list[ImageCaptions]) -> dict[str, float]:
        """One update at global ``step`` (1-based); metrics of this step."""
        config = self.train_config
        task = task_for_step(step - 1, config.generation_per_matching)
        metrics: dict[str, float] = {"boxes": float(batch.num_boxes)}
        self.model.train()
        with self.autocast():
            if task == "generation":
                out = self.model(batch, task="generation")
                loss, _ = generation_loss(out.logits, batch.captions)
            else:
                matched, _ = matching_batch(
                    batch, images, self.probabilities(step), self.rng, config.positive_rate, list(self.pool)
                )
                logits = self.model(matched, task="matching").match_logits.float()
                labels = matched.extras["labels"]
                loss = F.binary_cross_entropy_with_logits(logits, labels)
                metrics["matching_accuracy"] = float(((logits > 0).float() == labels).float().mean())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
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
