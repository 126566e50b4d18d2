"""From the pipeline's numpy rows (one per image) to an image-major ``ModelBatch``.

Shared by training, validation, evaluation and serving: every path batches images the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from components.data.record.tokenizer import EOS, PAD, SOS
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


def padded_box_count(boxes: int, bucket: int) -> int:
    """``boxes`` rounded up to a multiple of ``bucket`` (0: unchanged)."""
    return boxes if bucket <= 0 else -(-boxes // bucket) * bucket


def pad_boxes(batch: ModelBatch, bucket: int) -> ModelBatch:
    """The batch with empty boxes appended up to a multiple of ``bucket`` boxes, so that a compiled
    model sees a few shapes instead of one per batch. A padding box is the first image's, has no
    neighbours and an all-``<pad>`` caption: the generation loss ignores it (every target is
    ``<pad>``), and the caller scores matching on the first ``batch.num_boxes`` rows only."""
    n = batch.num_boxes
    extra = padded_box_count(n, bucket) - n
    if extra == 0:
        return batch

    def grow(tensor: torch.Tensor, fill: float | int | bool = 0) -> torch.Tensor:
        tail = torch.full((extra, *tensor.shape[1:]), fill, dtype=tensor.dtype, device=tensor.device)
        return torch.cat([tensor, tail])  # (N + extra, ...)

    return replace(
        batch,
        image_index=grow(batch.image_index),
        boxes=grow(batch.boxes),
        neighbour_boxes=grow(batch.neighbour_boxes),
        neighbour_valid=grow(batch.neighbour_valid, False),
        captions=None if batch.captions is None else grow(batch.captions, PAD),
        extras={k: grow(v) for k, v in batch.extras.items()},
    )
