"""Masking text pixels and preparing the image for the backbone (SPEC 2.2).

Every box in ``all_locs`` is filled with black at the stored resolution, inclusive of both corners,
before resizing; otherwise the model learns to read the answer off the pixels (an OCR model). Then
the image is resized to ``32k x 32k`` for a ``k x k`` grid and normalised with ImageNet statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from components.data.record.boxes import Box

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# ResNets downsample by 32: a 32k-pixel input gives a k x k last feature map.
BACKBONE_STRIDE = 32


def box_pixel_bounds(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Inclusive pixel bounds ``(px1, py1, px2, py2)`` of a normalised box on a ``width x height`` image.

    Corners are rounded to the nearest pixel, so pixel boxes normalised by the image size map back
    to exactly the integers they came from.
    """
    px1 = min(width - 1, max(0, int(np.floor(box.x1 * width + 0.5))))
    py1 = min(height - 1, max(0, int(np.floor(box.y1 * height + 0.5))))
    px2 = min(width - 1, max(0, int(np.floor(box.x2 * width + 0.5))))
    py2 = min(height - 1, max(0, int(np.floor(box.y2 * height + 0.5))))
    return px1, py1, px2, py2


def mask_boxes(pixels: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """A copy of an ``H x W x C`` image with every box filled black, both corners included."""
    masked = pixels.copy()
    height, width = masked.shape[:2]
    for box in boxes:
        px1, py1, px2, py2 = box_pixel_bounds(box, width, height)
        masked[py1 : py2 + 1, px1 : px2 + 1] = 0
    return masked


def input_size(grid: int) -> int:
    """Side in pixels of the square backbone input for a ``grid x grid`` feature map."""
    return BACKBONE_STRIDE * grid


def masked_pixels(image: Image.Image, mask: Sequence[Box], grid: int) -> np.ndarray:
    """Mask at the stored resolution, then resize to ``32k x 32k``: uint8 ``(3, 32k, 32k)``."""
    pixels = mask_boxes(np.asarray(image.convert("RGB")), mask)
    side = input_size(grid)
    resized = Image.fromarray(pixels).resize((side, side), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(resized).transpose(2, 0, 1))  # (3, side, side)


def prepare_image(image: Image.Image, mask: Sequence[Box], grid: int) -> np.ndarray:
    """Mask, resize to ``32k x 32k`` and normalise: a float32 ``(3, 32k, 32k)`` array."""
    scaled = masked_pixels(image, mask, grid).transpose(1, 2, 0).astype(np.float32) / 255.0  # (side, side, 3)
    normalised = (scaled - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))  # (3, side, side)
