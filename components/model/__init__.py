"""The CapOnImage model; imports neither Ray nor MLflow."""

from __future__ import annotations

from components.data.neighbours import neighbour_slots
from components.model.backbone import CHANNELS, GridBackbone
from components.model.capon import CapOnImage, ModelBatch, ModelOutput
from components.model.config import ModelConfig, load_preset
from components.model.decoding import beam_decode, decode, greedy_decode


def build_model(config: ModelConfig) -> CapOnImage:
    """The one place that turns a ``ModelConfig`` into constructor arguments."""
    backbone = None
    if config.use_image:
        backbone = GridBackbone(config.backbone, config.grid, config.backbone_weights, config.train_backbone)
    return CapOnImage(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        ffn_mult=config.ffn_mult,
        grid=config.grid,
        backbone=backbone,
        backbone_channels=CHANNELS[config.backbone],
        dropout=config.dropout,
        max_positions=max(config.max_info_tokens, config.caption_length),
        neighbour_slots=neighbour_slots(config.neighbours),
        use_image=config.use_image,
        use_info=config.use_info,
        use_locations=config.use_locations,
    )


def count_parameters(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "CapOnImage",
    "GridBackbone",
    "ModelBatch",
    "ModelConfig",
    "ModelOutput",
    "beam_decode",
    "build_model",
    "count_parameters",
    "decode",
    "greedy_decode",
    "load_preset",
]
