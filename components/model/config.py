"""The model's configuration: one frozen dataclass beside the model, presets in YAML files."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from components.data.neighbours import NEIGHBOUR_VARIANTS
from components.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets" / "model"
BACKBONES = ("resnet18", "resnet34", "resnet50")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 6263
    d_model: int = 1024
    n_layers: int = 6
    n_heads: int = 8
    ffn_mult: int = 4
    grid: int = 8  # k: the image becomes k x k cells; boxes are indexed on the same grid
    backbone: str = "resnet50"
    backbone_weights: str | None = None  # ImageNet weights path or URI; None: torchvision cache or random; "none": skip
    train_backbone: bool = True
    dropout: float = 0.1
    max_info_tokens: int = 60
    max_caption_tokens: int = 10  # generated tokens, <sos> and <eos> not counted
    # Ablation switches (paper Table 2 / A5): neighbours "none" is the baseline.
    neighbours: str = "top1"
    use_image: bool = True
    use_info: bool = True
    use_locations: bool = True

    def __post_init__(self) -> None:
        checks = [
            ("vocab_size", self.vocab_size > 5, "must exceed the 5 specials"),
            ("d_model", self.d_model > 0 and self.d_model % 2 == 0, "must be a positive even number"),
            ("n_heads", self.n_heads > 0 and self.d_model % self.n_heads == 0, "must divide d_model"),
            ("n_layers", self.n_layers > 0, "must be positive"),
            ("ffn_mult", self.ffn_mult > 0, "must be positive"),
            ("grid", 1 <= self.grid <= 32, "must be in 1..32"),
            ("backbone", self.backbone in BACKBONES, f"must be one of {', '.join(BACKBONES)}"),
            ("dropout", 0.0 <= self.dropout < 1.0, "must be in [0, 1)"),
            ("max_info_tokens", self.max_info_tokens > 0, "must be positive"),
            ("max_caption_tokens", self.max_caption_tokens > 0, "must be positive"),
            ("neighbours", self.neighbours in NEIGHBOUR_VARIANTS, f"must be one of {', '.join(NEIGHBOUR_VARIANTS)}"),
        ]
        for key, ok, message in checks:
            if not ok:
                raise ConfigError(f"model.{key}", f"{message} (got {getattr(self, key)!r})")

    @property
    def caption_length(self) -> int:
        """Caption positions in the sequence: <sos> + tokens + <eos>."""
        return self.max_caption_tokens + 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"model.{unknown[0]}", f"unknown key; known keys: {', '.join(sorted(known))}")
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        return replace(self, **overrides)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str, **overrides: Any) -> ModelConfig:
    """A preset from ``components/presets/model/<name>.yaml``, with keyword overrides."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError("model.preset", f"unknown preset '{name}'; presets: {', '.join(preset_names())}")
    values = yaml.safe_load(path.read_text("utf-8")) or {}
    return ModelConfig.from_dict({**values, **overrides})
