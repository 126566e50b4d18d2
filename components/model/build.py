"""The one place that turns a ``ModelConfig`` into the model's constructor arguments."""

from __future__ import annotations

from torch import nn

from components.config import ModelConfig
from components.data.transforms.neighbours import neighbour_slots
from components.model.backbone import CHANNELS, GridBackbone
from components.model.capon import CapOnImage


def build_model(config: ModelConfig, backbone: nn.Module | None = None) -> CapOnImage:
    """The model of ``config``; ``backbone`` (with its width in ``channels``) replaces the ResNet trunk
    the config names, as the image probe's pixel control does."""
    if config.use_image and backbone is None:
        backbone = GridBackbone(
            config.backbone, config.grid, config.backbone_weights, config.train_backbone, config.backbone_norm
        )
    return CapOnImage(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        ffn_mult=config.ffn_mult,
        grid=config.grid,
        backbone=backbone,
        backbone_channels=backbone.channels if backbone is not None else CHANNELS[config.backbone],
        dropout=config.dropout,
        max_positions=max(config.max_info_tokens, config.caption_length),
        neighbour_slots=neighbour_slots(config.neighbours),
        use_image=config.use_image,
        use_info=config.use_info,
        use_locations=config.use_locations,
        copy_from_info=config.copy_from_info,
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
