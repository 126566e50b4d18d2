"""Checkpoints: a folder with the weights, the optimiser state, the step, the config and the vocabulary.

Loaded with ``torch.load(..., weights_only=True)``: a checkpoint cannot run code. A model logged to
MLflow (a run's artifact, the pyfunc model) holds the same folder without the optimiser state, under
``CHECKPOINT_ARTIFACT``. The config names the backbone's normalisation as its weights have it, so that
a model rebuilt from the config (serving, evaluation, fine-tuning) fits the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from components.data.tokenizer import Tokenizer

MODEL_FILE = "model.pt"
STATE_FILE = "training.pt"  # optimiser, schedule and sampling state: for resuming only
CONFIG_FILE = "config.json"
CHECKPOINT_ARTIFACT = "checkpoint"  # the folder's name in a run's artifacts and inside the pyfunc model


def backbone_norm_of(model_state: dict[str, torch.Tensor]) -> str | None:
    """The backbone's normalisation, read off its weights (BatchNorm keeps running statistics,
    GroupNorm none); None for a model without a backbone."""
    keys = [key for key in model_state if key.startswith("backbone.")]
    if not keys:
        return None
    return "frozen_batchnorm" if any(key.endswith(".running_mean") for key in keys) else "groupnorm"


def _with_backbone_norm(job: dict[str, Any], model_state: dict[str, torch.Tensor]) -> dict[str, Any]:
    norm = backbone_norm_of(model_state)
    if norm is None or "model" not in job:
        return job
    return {**job, "model": {**job["model"], "backbone_norm": norm}}


def save_checkpoint(
    folder: str | Path,
    model_state: dict[str, torch.Tensor],
    training_state: dict[str, Any],
    job: dict[str, Any],
    tokenizer: Tokenizer,
) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model_state, folder / MODEL_FILE)
    torch.save(training_state, folder / STATE_FILE)
    job = _with_backbone_norm(job, model_state)
    (folder / CONFIG_FILE).write_text(json.dumps(job, indent=2, default=list), "utf-8")
    tokenizer.save(folder)
    return folder


def inference_files(folder: str | Path) -> list[Path]:
    """The files that serve a model (weights, config, vocabulary), without the optimiser state."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name != STATE_FILE)


@dataclass
class LoadedCheckpoint:
    model_state: dict[str, torch.Tensor]
    training_state: dict[str, Any] | None
    job: dict[str, Any]
    tokenizer: Tokenizer

    @property
    def step(self) -> int:
        return int(self.training_state["step"]) if self.training_state else 0


def load_checkpoint(folder: str | Path, with_training_state: bool = True) -> LoadedCheckpoint:
    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file():
        raise FileNotFoundError(f"{folder} holds no {MODEL_FILE}: not a CapOnImage checkpoint")
    model_state = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
    training_state = None
    if with_training_state and (folder / STATE_FILE).is_file():
        training_state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    job = _with_backbone_norm(json.loads((folder / CONFIG_FILE).read_text("utf-8")), model_state)
    return LoadedCheckpoint(model_state, training_state, job, Tokenizer.load(folder))
