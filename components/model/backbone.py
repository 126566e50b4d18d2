"""The image backbone: a torchvision ResNet trunk whose last feature map is pooled to k x k cells.

BatchNorm is frozen (as in DETR): per-GPU image batches are small, and frozen statistics make a box's
output independent of which other images share its batch, so the image-major forward (one backbone
pass per image, shared by its boxes) equals running the backbone once per box.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from components import storage
from components.config import SKIP_WEIGHTS
from components.data.masking import IMAGENET_MEAN, IMAGENET_STD
from components.errors import ConfigError

log = logging.getLogger(__name__)

CHANNELS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
_TORCHVISION_WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights,
    "resnet34": torchvision.models.ResNet34_Weights,
    "resnet50": torchvision.models.ResNet50_Weights,
}


def _cached_torchvision_weights(name: str) -> Path | None:
    """ImageNet weights already in torchvision's download cache, if any (nothing is downloaded)."""
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in _TORCHVISION_WEIGHTS[name]:
        path = checkpoints / Path(weights.url).name
        if path.is_file():
            return path
    return None


def _fetch(source: str, scratch: Path) -> Path:
    """A local path for ``source``: a plain path, ``file://``, or any URI pyarrow can open (``s3://``, ...)."""
    if not storage.is_uri(source):
        path = Path(source.removeprefix("file://")).expanduser()
        if not path.is_file():
            raise ConfigError("model.backbone_weights", f"no such file: {path}")
        return path
    target = scratch / Path(source).name
    try:
        target.write_bytes(storage.read_bytes(source))
    except (OSError, ValueError) as err:
        raise ConfigError("model.backbone_weights", f"cannot read {source}: {err}") from err
    return target


def load_trunk_weights(trunk: nn.Module, path: Path) -> None:
    """Load a torchvision ResNet state dict (its ``fc`` classifier is dropped) into ``trunk``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        trunk.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError("model.backbone_weights", f"{path} does not fit this backbone: {err}") from err


class GridBackbone(nn.Module):
    """Image ``(B, 3, 32k, 32k)`` to cell features ``(B, k*k, C)``, cells in row-major order."""

    def __init__(self, name: str = "resnet50", grid: int = 8, weights: str | None = None, trainable: bool = True):
        super().__init__()
        if name not in CHANNELS:
            raise ConfigError("model.backbone", f"unknown backbone '{name}'")
        self.grid = grid
        self.channels = CHANNELS[name]
        self.trunk = getattr(torchvision.models, name)(weights=None, norm_layer=FrozenBatchNorm2d)
        self.trunk.fc = nn.Identity()  # the classifier is not used
        # ImageNet statistics for uint8 inputs: the data pipeline ships bytes, 4x less than floats.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_source = self._load_weights(name, weights)
        for parameter in self.trunk.parameters():
            parameter.requires_grad_(trainable)

    def _load_weights(self, name: str, weights: str | None) -> str:
        if weights == SKIP_WEIGHTS:  # trained weights are loaded next (serving, evaluation)
            return SKIP_WEIGHTS
        with tempfile.TemporaryDirectory() as scratch:
            path = _fetch(weights, Path(scratch)) if weights else _cached_torchvision_weights(name)
            if path is None:
                log.warning(
                    "no ImageNet weights for %s (none given, none in torchvision's cache at %s): "
                    "the backbone starts from random initialisation",
                    name,
                    Path(torch.hub.get_dir()) / "checkpoints",
                )
                return "random"
            load_trunk_weights(self.trunk, path)
        log.info("loaded %s ImageNet weights from %s", name, weights or path)
        return weights or str(path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` float (already normalised) or uint8 (masked pixels, normalised here on the device)."""
        if images.dtype == torch.uint8:
            images = (images.float() / 255.0 - self.mean) / self.std
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(images))))
        x = t.layer4(t.layer3(t.layer2(t.layer1(x))))  # (B, C, h, w), h = w = side / 32
        x = F.adaptive_avg_pool2d(x, self.grid)  # (B, C, k, k)
        return x.flatten(2).transpose(1, 2)  # (B, k*k, C)
