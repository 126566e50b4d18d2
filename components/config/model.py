"""The model's configuration (SPEC 3) and its presets (``presets/model/<name>.yaml``).

``build_model`` (``components.model``) turns it into constructor arguments; the classes of the model
take plain keyword arguments and know nothing of this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ValidationInfo, field_validator

from components.config.base import Flag, Number, PositiveInt, Section, Text
from components.config.yaml import read_yaml_file
from components.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parent / "presets" / "model"
Backbone = Literal["resnet18", "resnet34", "resnet50"]
Neighbours = Literal["none", "random2", "top1", "top2"]  # paper Table A5; "none" is the baseline
BackboneNorm = Literal["auto", "frozen_batchnorm", "groupnorm"]
BACKBONES: tuple[str, ...] = get_args(Backbone)
BACKBONE_NORMS: tuple[str, ...] = get_args(BackboneNorm)
NEIGHBOUR_VARIANTS: tuple[str, ...] = get_args(Neighbours)
SKIP_WEIGHTS = "none"  # backbone_weights value: no ImageNet weights, not even a warning


class ModelConfig(Section):
    SECTION = "model"

    vocab_size: PositiveInt = 6263
    d_model: PositiveInt = 1024
    n_layers: PositiveInt = 6
    n_heads: PositiveInt = 8
    ffn_mult: PositiveInt = 4
    grid: PositiveInt = 8  # k: the image becomes k x k cells; boxes are indexed on the same grid
    backbone: Backbone = "resnet50"
    # ImageNet weights: a path or URI; None: torchvision's cache, else random init; "none": skip
    backbone_weights: Text | None = None
    train_backbone: Flag = True
    # frozen_batchnorm with ImageNet weights, groupnorm from random init (frozen BatchNorm with random
    # weights is the identity); auto picks by whether ImageNet weights are there (components.model.backbone)
    backbone_norm: BackboneNorm = "auto"
    dropout: Number = 0.1
    max_info_tokens: PositiveInt = 60
    max_caption_tokens: PositiveInt = 10  # generated tokens, <sos> and <eos> not counted
    # Ablation switches (paper Table 2 / A5).
    neighbours: Neighbours = "top1"
    use_image: Flag = True
    use_info: Flag = True
    use_locations: Flag = True
    # Not in the paper: a pointer that copies info words into the caption (components.model.capon);
    # without info (the no-info ablation) there is nothing to copy and no pointer.
    copy_from_info: Flag = False

    @field_validator("vocab_size")
    @classmethod
    def _beyond_specials(cls, value: int) -> int:
        if value <= 5:
            raise ValueError(f"must exceed the 5 specials (got {value})")
        return value

    @field_validator("d_model")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:  # the spatial embedding is [Emb_h(x); Emb_v(y)], d/2 each
            raise ValueError(f"must be a positive even number (got {value})")
        return value

    @field_validator("n_heads")
    @classmethod
    def _divides_width(cls, value: int, info: ValidationInfo) -> int:
        width = info.data.get("d_model")
        if width is not None and width % value:
            raise ValueError(f"must divide d_model {width} (got {value})")
        return value

    @field_validator("grid")
    @classmethod
    def _grid_range(cls, value: int) -> int:
        if not 1 <= value <= 32:
            raise ValueError(f"must be in 1..32 (got {value})")
        return value

    @field_validator("dropout")
    @classmethod
    def _dropout_range(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"must be in [0, 1) (got {value})")
        return value

    @property
    def caption_length(self) -> int:
        """Caption positions in the sequence: <sos> + tokens + <eos>."""
        return self.max_caption_tokens + 2


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_values(name: Any) -> dict[str, Any]:
    """The values of ``presets/model/<name>.yaml``."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not isinstance(name, str) or not path.is_file():
        raise ConfigError("model.preset", f"unknown preset '{name}'; presets: {', '.join(preset_names())}")
    return read_yaml_file(path, "model.preset")


def load_preset(name: str, **overrides: Any) -> ModelConfig:
    """A preset with keyword overrides: ``load_preset("tiny", vocab_size=60)``."""
    return ModelConfig(**{**preset_values(name), **overrides})


def expand_preset(values: Any) -> Any:
    """A job's ``model`` section: ``{"preset": "small", "d_model": 192}`` to the preset's values with
    the others laid over them; anything else unchanged."""
    if not isinstance(values, dict) or "preset" not in values:
        return values
    rest = {k: v for k, v in values.items() if k != "preset"}
    return {**preset_values(values["preset"]), **rest}
