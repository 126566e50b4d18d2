"""One image's record to the fixed-shape row the model reads (pure: no Ray).

The pipeline's actors, the captioning requests and the benchmarks encode images the same way:
masked uint8 pixels at the model's input size, boxes, captions, chain and chosen neighbours, and the
info tokens, padded to fixed shapes so that rows stack into batches. The raw caption strings travel
too (``references``, one JSON list per image): metrics score against them, never against captions
rebuilt from token ids, where a character outside the vocabulary would come back as ``<unk>``; and
so does the raw info, which the publishing checks read.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from PIL import Image

from components.config import ModelConfig
from components.data.record.tokenizer import PAD, Tokenizer
from components.data.release.format import ImageRecord
from components.data.transforms.masking import masked_pixels
from components.data.transforms.neighbours import NO_NEIGHBOUR, chain_neighbours, neighbour_slots, neighbours


@dataclass(frozen=True)
class EncodeSpec:
    grid: int
    neighbours: str = "top1"
    max_boxes: int = 32
    max_info_tokens: int = 60
    max_caption_tokens: int = 10
    seed: int = 0  # the job's seed: ``random2`` neighbours are drawn from it, once per image

    @classmethod
    def for_model(cls, model: ModelConfig, max_boxes: int = 32, seed: int = 0) -> EncodeSpec:
        """The encoding a model needs, from its config (grid, neighbours and token budgets)."""
        return cls(
            grid=model.grid,
            neighbours=model.neighbours,
            max_boxes=max_boxes,
            max_info_tokens=model.max_info_tokens,
            max_caption_tokens=model.max_caption_tokens,
            seed=seed,
        )

    @property
    def slots(self) -> int:
        return max(1, neighbour_slots(self.neighbours))  # at least one column keeps shapes fixed


def image_rng(seed: int, image_id: str) -> random.Random:
    """The random draws of one image (``random2`` neighbours): fixed by the job's seed and the image,
    so that every epoch, every worker and the evaluation see the same ones."""
    return random.Random(f"{seed}:{image_id}")  # a string seed is hashed with SHA-512: stable across processes


def column_shapes(spec: EncodeSpec) -> dict[str, tuple[tuple[int, ...], type]]:
    """Each array column of one encoded row: its shape (the spec's sizes) and type."""
    side = 32 * spec.grid
    return {
        "image": ((3, side, side), np.uint8),
        "size": ((2,), np.int32),
        "info_ids": ((spec.max_info_tokens,), np.int32),
        "n_boxes": ((), np.int32),
        "truncated_boxes": ((), np.int32),
        "boxes": ((spec.max_boxes, 4), np.float32),
        "captions": ((spec.max_boxes, spec.max_caption_tokens + 2), np.int32),
        "chain": ((spec.max_boxes, 2), np.int32),
        "neighbours": ((spec.max_boxes, spec.slots), np.int32),
    }


@dataclass(frozen=True)
class EncodedRow:
    """One image as the model reads it, the schema of every batch the pipeline hands out: batches are
    these rows stacked column by column, one column per field (``ENCODED_COLUMNS``), read by name
    wherever a batch is read (``tests/unit/test_floors.py`` checks the names)."""

    image_id: str
    image: np.ndarray  # (3, 32k, 32k) uint8, every text box masked
    size: np.ndarray  # (2,) int32: (width, height) as stored, for aspect ratios
    info_ids: np.ndarray  # (max_info_tokens,) int32, <pad> after the info
    n_boxes: np.int32  # caption boxes kept (at most max_boxes)
    truncated_boxes: np.int32  # caption boxes beyond max_boxes, dropped
    boxes: np.ndarray  # (max_boxes, 4) float32 fractions, zero rows after n_boxes
    captions: np.ndarray  # (max_boxes, max_caption_tokens + 2) int32 ids with <sos>/<eos>
    chain: np.ndarray  # (max_boxes, 2) int32: previous and next box in the chain, NO_NEIGHBOUR if none
    neighbours: np.ndarray  # (max_boxes, slots) int32: the neighbours the model is given
    references: str  # the kept raw captions as one JSON list
    info: str  # the raw product info: what grounding checks a caption's claims against

    def checked(self, spec: EncodeSpec) -> EncodedRow:
        """This row, if every array column has the spec's shape and type (else ``ValueError`` naming it)."""
        for name, (shape, dtype) in column_shapes(spec).items():
            value = np.asarray(getattr(self, name))
            if value.shape != shape or value.dtype != dtype:
                raise ValueError(
                    f"encoded row {self.image_id}: column {name} is {value.dtype}{value.shape}, "
                    f"not {np.dtype(dtype)}{shape}"
                )
        return self

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ENCODED_COLUMNS}


ENCODED_COLUMNS = tuple(f.name for f in fields(EncodedRow))


def encode_record(record: ImageRecord, image: Image.Image, tokenizer: Tokenizer, spec: EncodeSpec) -> dict[str, Any]:
    """One image's row (``EncodedRow``, as a dict of its columns): masked uint8 pixels plus its boxes,
    captions and neighbours padded to fixed shapes."""
    n = min(len(record.captions), spec.max_boxes)
    caption_length = spec.max_caption_tokens + 2
    boxes = np.zeros((spec.max_boxes, 4), dtype=np.float32)
    boxes[:n] = np.asarray(record.caption_boxes[:n], dtype=np.float32)
    captions = np.full((spec.max_boxes, caption_length), PAD, dtype=np.int32)
    for i, text in enumerate(record.captions[:n]):
        ids = tokenizer.encode_caption(text, spec.max_caption_tokens)
        captions[i, : len(ids)] = ids
    kept = list(record.caption_boxes[:n])
    chain = np.full((spec.max_boxes, 2), NO_NEIGHBOUR, dtype=np.int32)
    chain[:n] = np.asarray(chain_neighbours(kept), dtype=np.int32).reshape(n, 2)
    chosen = np.full((spec.max_boxes, spec.slots), NO_NEIGHBOUR, dtype=np.int32)
    if neighbour_slots(spec.neighbours):
        drawn = neighbours(kept, spec.neighbours, image_rng(spec.seed, record.image_id))
        chosen[:n] = np.asarray(drawn, dtype=np.int32).reshape(n, -1)
    info = np.full(spec.max_info_tokens, PAD, dtype=np.int32)
    info_ids = tokenizer.encode_info(record.info, spec.max_info_tokens)
    info[: len(info_ids)] = info_ids
    row = EncodedRow(
        image_id=record.image_id,
        image=masked_pixels(image, record.mask_boxes, spec.grid),
        size=np.asarray(image.size, dtype=np.int32),
        info_ids=info,
        n_boxes=np.int32(n),
        truncated_boxes=np.int32(len(record.captions) - n),
        boxes=boxes,
        captions=captions,
        chain=chain,
        neighbours=chosen,
        references=json.dumps(list(record.captions[:n]), ensure_ascii=False),
        info=record.info,
    )
    return row.checked(spec).as_dict()


def row_references(rows: dict[str, np.ndarray]) -> list[list[str]]:
    """The raw caption strings of every image of a batch of encoded rows, in box order."""
    return [json.loads(str(text)) for text in rows["references"]]


def empty_rows(spec: EncodeSpec) -> dict[str, np.ndarray]:
    """A batch of zero images with the same columns, shapes and types as real ones."""
    arrays = {name: np.zeros((0, *shape), dtype=dtype) for name, (shape, dtype) in column_shapes(spec).items()}
    return {name: arrays.get(name, np.zeros((0,), dtype=object)) for name in ENCODED_COLUMNS}
