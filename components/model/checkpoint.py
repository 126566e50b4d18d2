"""Checkpoints: a folder with the weights, the optimiser state, the step, the config and the vocabulary.

Loaded with ``torch.load(..., weights_only=True)``: a checkpoint cannot run code. A model logged to
MLflow (a run's artifact, the pyfunc model) holds the same folder without the optimiser state, under
``CHECKPOINT_ARTIFACT``. The config names the backbone's normalisation as its weights have it, so that
a model rebuilt from the config (serving, evaluation, fine-tuning) fits the weights.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from components.data.record.tokenizer import SPECIALS, Tokenizer
from components.errors import CheckpointRefused

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

    @property
    def seed(self) -> int:
        """The seed it trained with: a ``random2`` model's neighbours are drawn from it."""
        return int(self.job.get("train", {}).get("seed", 0))


WORD_TABLE = "text.words.weight"  # (V, d): the only weight sized by the vocabulary (the output is tied to it)


def grow_word_table(model_state: dict[str, torch.Tensor], vocab_size: int) -> dict[str, torch.Tensor]:
    """``model_state`` with its word table grown to ``vocab_size`` rows for tokens appended to the
    vocabulary. Each new row starts as the mean of the trained rows (the specials left out): an
    embedding of the typical token, which reads as neither a special nor any one token, and which the
    tied output first scores like an average token, neither certain nor never."""
    table = model_state[WORD_TABLE]  # (V, d)
    if vocab_size < table.shape[0]:
        raise ValueError(f"a word table of {table.shape[0]} rows cannot shrink to {vocab_size}")
    mean = table[len(SPECIALS) :].float().mean(dim=0, keepdim=True).to(table.dtype)  # (1, d)
    rows = mean.expand(vocab_size - table.shape[0], -1)  # (V' - V, d)
    return {**model_state, WORD_TABLE: torch.cat([table, rows], dim=0)}  # (V', d)


def load_checkpoint(folder: str | Path, with_training_state: bool = True) -> LoadedCheckpoint:
    """A checkpoint folder's weights, training state, config and vocabulary; ``CheckpointRefused``
    for a folder that is not a checkpoint or whose files hold anything but tensors (nothing in them
    is ever unpickled: ``torch.load(weights_only=True)``)."""
    folder = Path(folder)
    missing = [name for name in (MODEL_FILE, CONFIG_FILE) if not (folder / name).is_file()]
    if missing:
        raise CheckpointRefused(f"{folder} holds no {' and no '.join(missing)}: not a CapOnImage checkpoint")
    model_state = _weights(folder / MODEL_FILE)
    training_state = None
    if with_training_state and (folder / STATE_FILE).is_file():
        training_state = _weights(folder / STATE_FILE)
    job = _with_backbone_norm(json.loads((folder / CONFIG_FILE).read_text("utf-8")), model_state)
    return LoadedCheckpoint(model_state, training_state, job, Tokenizer.load(folder))


def _weights(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0]
        raise CheckpointRefused(f"{path} was refused: it holds more than tensors ({reason})") from err
    except (RuntimeError, EOFError) as err:  # not a torch file at all, or cut short
        raise CheckpointRefused(f"{path} is not a readable torch file: {err}") from err
