"""The CapOnImage model, its batches, checkpoints and inference; imports neither Ray nor MLflow."""

from __future__ import annotations

from components.config import ModelConfig, load_preset
from components.model.backbone import CHANNELS, GridBackbone
from components.model.build import build_model, count_parameters
from components.model.capon import CapOnImage, ModelBatch, ModelOutput
from components.model.decoding import beam_candidates, beam_decode, decode, greedy_decode

__all__ = [
    "CHANNELS",
    "CapOnImage",
    "GridBackbone",
    "ModelBatch",
    "ModelConfig",
    "ModelOutput",
    "beam_candidates",
    "beam_decode",
    "build_model",
    "count_parameters",
    "decode",
    "greedy_decode",
    "load_preset",
]
