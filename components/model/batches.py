"""From the pipeline's numpy rows (one per image) to an image-major ``ModelBatch``.

Shared by training, validation, evaluation and serving: every path batches images the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from components.data.tokenizer import EOS, PAD, SOS
from components.model.capon import ModelBatch

Tokens = tuple[int, ...]


@dataclass(frozen=True)
class ImageCaptions:
    """One image's captions in box order and each box's chain neighbours ``(prev, next)``."""

    captions: tuple[str, ...]
    neighbours: tuple[tuple[int, int], ...]


def caption_tokens(row: np.ndarray) -> Tokens:
    """The content tokens of an encoded caption (between ``<sos>`` and ``<eos>``)."""
    tokens = []
    for token in row[1:]:
        if token in (EOS, PAD):
            break
        tokens.append(int(token))
    return tuple(tokens)


def encode_tokens(tokens: Tokens, length: int) -> list[int]:
    ids = [SOS, *tokens, EOS]
    return ids + [PAD] * (length - len(ids))


def collate(rows: dict[str, np.ndarray]) -> tuple[ModelBatch, list[ImageCaptions]]:
    """Image-major batch: images and info once per image, every box flattened with its image index."""
    n_boxes = rows["n_boxes"].astype(np.int64)  # (B,)
    n_images, max_boxes = rows["boxes"].shape[:2]
    keep = np.arange(max_boxes)[None, :] < n_boxes[:, None]  # (B, M)
    image_index = np.repeat(np.arange(n_images), n_boxes)  # (N,)
    neighbour_index = rows["neighbours"][keep].astype(np.int64)  # (N, S), -1 where none
    neighbour_boxes = rows["boxes"][image_index[:, None], np.clip(neighbour_index, 0, None)]  # (N, S, 4)
    batch = ModelBatch(
        images=torch.from_numpy(np.array(rows["image"])),  # a copy: Ray hands out read-only arrays
        info_ids=torch.from_numpy(rows["info_ids"].astype(np.int64)),
        image_index=torch.from_numpy(image_index),
        boxes=torch.from_numpy(rows["boxes"][keep].astype(np.float32)),
        neighbour_boxes=torch.from_numpy(neighbour_boxes.astype(np.float32)),
        neighbour_valid=torch.from_numpy(neighbour_index >= 0),
        captions=torch.from_numpy(rows["captions"][keep].astype(np.int64)),
    )
    images = []
    for b in range(n_images):
        n = int(n_boxes[b])
        captions = tuple(caption_tokens(rows["captions"][b, i]) for i in range(n))
        chain = tuple((int(p), int(q)) for p, q in rows["chain"][b, :n])
        images.append(ImageCaptions(captions, chain))
    return batch, images
