"""The image backbone: a torchvision ResNet trunk whose last feature map is pooled to k x k cells.

Its normalisation layers (``backbone_norm``) depend on where its weights come from:

- ``frozen_batchnorm`` with ImageNet weights (as in DETR): per-GPU image batches are small, and the
  pretrained statistics, frozen, make a box's output independent of which other images share its batch.
- ``groupnorm`` (32 groups) from random initialisation: frozen BatchNorm holding the initial
  statistics (mean 0, variance 1, scale 1, shift 0) is the identity, so a random trunk would train with
  no normalisation at all; GroupNorm normalises each image on its own, so it keeps the same
  independence from the batch.
- ``auto``: ``frozen_batchnorm`` when ImageNet weights are given or in torchvision's cache, else
  ``groupnorm``. Training resolves it once on the driver, so the run's params and its checkpoint say
  which was used.

Either way the image-major forward (one backbone pass per image, shared by its boxes) equals running
the backbone once per box.
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
from components.config import BACKBONE_NORMS, SKIP_WEIGHTS
from components.data.transforms.masking import IMAGENET_MEAN, IMAGENET_STD
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


def resolve_norm(norm: str, name: str, weights: str | None) -> str:
    """The normalisation a backbone gets: ``auto`` becomes ``frozen_batchnorm`` when ImageNet weights
    will be loaded (given, or in torchvision's cache) and ``groupnorm`` when the trunk starts random.

    ``auto`` with ``weights="none"`` (trained weights loaded next) is a checkpoint written before the
    choice existed: those all used frozen BatchNorm."""
    if norm not in BACKBONE_NORMS:
        raise ConfigError("model.backbone_norm", f"unknown normalisation '{norm}'; expected one of {BACKBONE_NORMS}")
    if norm != "auto":
        return norm
    if weights == SKIP_WEIGHTS or weights:
        return "frozen_batchnorm"
    return "frozen_batchnorm" if _cached_torchvision_weights(name) else "groupnorm"


def _norm_layer(norm: str):
    if norm == "groupnorm":
        return lambda channels: nn.GroupNorm(32, channels)  # every ResNet width is a multiple of 32
    return FrozenBatchNorm2d


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

    def __init__(
        self,
        name: str = "resnet50",
        grid: int = 8,
        weights: str | None = None,
        trainable: bool = True,
        norm: str = "auto",
    ):
        super().__init__()
        if name not in CHANNELS:
            raise ConfigError("model.backbone", f"unknown backbone '{name}'")
        self.grid = grid
        self.channels = CHANNELS[name]
        self.norm = resolve_norm(norm, name, weights)
        if self.norm == "groupnorm" and weights not in (None, SKIP_WEIGHTS):
            raise ConfigError(
                "model.backbone_norm",
                f"groupnorm cannot take the ImageNet weights {weights} (they carry BatchNorm statistics): "
                "use frozen_batchnorm or auto",
            )
        self.trunk = getattr(torchvision.models, name)(weights=None, norm_layer=_norm_layer(self.norm))
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
        if self.norm == "groupnorm":  # a random trunk by choice: ImageNet weights do not fit GroupNorm
            log.info("%s starts from random initialisation, with GroupNorm", name)
            return "random"
        with tempfile.TemporaryDirectory() as scratch:
            path = _fetch(weights, Path(scratch)) if weights else _cached_torchvision_weights(name)
            if path is None:
                log.warning(
                    "no ImageNet weights for %s (none given, none in torchvision's cache at %s): the backbone "
                    "starts from random initialisation with frozen BatchNorm, which is the identity: "
                    "set model.backbone_norm=groupnorm (or auto) to normalise it",
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
