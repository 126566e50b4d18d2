"""Streaming a release-format dataset to the trainers with Ray Data (image-major).

The driver reads only the index (``ref_captions.json`` and a split file, local or ``s3://``); an
actor pool reads each image, checks its record, masks the text boxes at the stored resolution,
resizes to ``32k x 32k``, tokenises and pads to fixed shapes. One row per image: the backbone runs
once per image downstream. A bad record or image is skipped and counted by reason in a
``RejectionTally`` actor, never fatal.

``encode_record`` is pure (no Ray) and tested on its own.
"""

from __future__ import annotations

import io
import json
import logging
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from components import storage
from components.data.masking import masked_pixels
from components.data.neighbours import NO_NEIGHBOUR, chain_neighbours, neighbour_slots, neighbours
from components.data.release import (
    CAPTIONS_FILE,
    IMAGES_DIR,
    SPLIT_FILES,
    ImageRecord,
    RecordRejected,
    parse_record_value,
    read_names,
)
from components.data.tokenizer import PAD, Tokenizer
from components.errors import DatasetFormatError, UnsafePathError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodeSpec:
    grid: int
    neighbours: str = "top1"
    max_boxes: int = 32
    max_info_tokens: int = 60
    max_caption_tokens: int = 10

    @classmethod
    def for_model(cls, model, max_boxes: int = 32) -> EncodeSpec:
        """The encoding a model needs, from its config (grid, neighbours and token budgets)."""
        return cls(
            grid=model.grid,
            neighbours=model.neighbours,
            max_boxes=max_boxes,
            max_info_tokens=model.max_info_tokens,
            max_caption_tokens=model.max_caption_tokens,
        )

    @property
    def slots(self) -> int:
        return max(1, neighbour_slots(self.neighbours))  # at least one column keeps shapes fixed


def encode_record(
    record: ImageRecord, image: Image.Image, tokenizer: Tokenizer, spec: EncodeSpec, rng: random.Random
) -> dict[str, Any]:
    """One image's row: masked uint8 pixels plus its boxes, captions and neighbours padded to fixed shapes."""
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
        chosen[:n] = np.asarray(neighbours(kept, spec.neighbours, rng), dtype=np.int32).reshape(n, -1)
    info = np.full(spec.max_info_tokens, PAD, dtype=np.int32)
    info_ids = tokenizer.encode_info(record.info, spec.max_info_tokens)
    info[: len(info_ids)] = info_ids
    return {
        "image_id": record.image_id,
        "image": masked_pixels(image, record.mask_boxes, spec.grid),  # (3, 32k, 32k) uint8
        "size": np.asarray(image.size, dtype=np.int32),  # (width, height) as stored, for aspect ratios
        "info_ids": info,
        "n_boxes": np.int32(n),
        "truncated_boxes": np.int32(len(record.captions) - n),
        "boxes": boxes,
        "captions": captions,
        "chain": chain,
        "neighbours": chosen,
    }


# -- the index (driver side) -----------------------------------------------------------------------
def read_index(dataset: str, split: str, limit: int | None = None) -> list[dict[str, str]]:
    """``[{"image_id", "record"}]`` for a split, the record as JSON text; ids absent from the
    captions file are kept (they are counted as ``missing_record`` downstream)."""
    captions_uri = storage.join(dataset, CAPTIONS_FILE)
    names_uri = storage.join(dataset, SPLIT_FILES[split])
    for uri in (captions_uri, names_uri):
        if not storage.exists(uri):
            raise DatasetFormatError(f"{uri} does not exist")
    data = json.loads(storage.read_bytes(captions_uri).decode("utf-8"))
    with io.BytesIO(storage.read_bytes(names_uri)) as handle:
        ids = read_names(handle)
    ids = ids[:limit] if limit else ids
    return [{"image_id": i, "record": json.dumps(data[i], ensure_ascii=False) if i in data else ""} for i in ids]


def dataset_version(dataset: str) -> str:
    """A short content hash of a dataset's captions file and split files: what scores are comparable on."""
    import hashlib

    digest = hashlib.sha256()
    for name in (CAPTIONS_FILE, *sorted(SPLIT_FILES.values())):
        uri = storage.join(dataset, name)
        digest.update(name.encode())
        digest.update(storage.read_bytes(uri) if storage.exists(uri) else b"<absent>")
    return digest.hexdigest()[:12]


# -- the Ray side ----------------------------------------------------------------------------------
def _tally_class():
    import ray

    @ray.remote(num_cpus=0)
    class RejectionTally:
        """Counts skipped records by reason across every decoding actor."""

        def __init__(self):
            self.counts: dict[str, int] = {}
            self.examples: list[str] = []

        def add(self, reason: str, message: str) -> None:
            self.counts[reason] = self.counts.get(reason, 0) + 1
            if len(self.examples) < 20:
                self.examples.append(message)

        def report(self) -> dict[str, Any]:
            return {"counts": dict(self.counts), "examples": list(self.examples)}

    return RejectionTally


def make_tally(name: str | None = None):
    """A ``RejectionTally`` actor (named, so that a restarted worker group finds the same one)."""
    cls = _tally_class()
    return cls.options(name=name, get_if_exists=True).remote() if name else cls.remote()


def load_record(images_root: str, image_id: str, record_json: str) -> tuple[ImageRecord, Image.Image]:
    """A record and its image (local or object store), or ``RecordRejected`` naming the field."""
    if not record_json:
        raise RecordRejected(CAPTIONS_FILE, "missing_record", "listed in a split file but has no record")
    try:
        location = storage.safe_join(images_root, f"{image_id}.png")
    except UnsafePathError as err:
        raise RecordRejected("image", "unsafe_path", str(err)) from err
    try:
        image = Image.open(io.BytesIO(storage.read_bytes(location)))
        image.load()
    except FileNotFoundError as err:
        raise RecordRejected("image", "missing_image", f"{location} does not exist") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise RecordRejected("image", "corrupt_image", f"{location}: {err}") from err
    return parse_record_value(image_id, json.loads(record_json), image.size), image


class EncodeImages:
    """``map_batches`` callable for an actor pool: index rows in, encoded image rows out."""

    def __init__(
        self, dataset: str, images_root: str | None, word2int: dict[str, int], mode: str, spec: EncodeSpec, tally=None
    ):
        self.images_root = images_root or storage.join(dataset, IMAGES_DIR)
        self.tokenizer = Tokenizer(word2int, mode)
        self.spec = spec
        self.tally = tally
        self.rng = random.Random()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = []
        for image_id, record_json in zip(batch["image_id"], batch["record"], strict=True):
            try:
                record, image = load_record(self.images_root, str(image_id), str(record_json))
                rows.append(encode_record(record, image, self.tokenizer, self.spec, self.rng))
            except RecordRejected as rejected:
                message = str(rejected.rejection(str(image_id)).error())
                log.warning("skipping %s", message)
                if self.tally is not None:
                    self.tally.add.remote(rejected.reason, message)
        if not rows:
            return empty_rows(self.spec)
        return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def empty_rows(spec: EncodeSpec) -> dict[str, np.ndarray]:
    """A batch of zero images with the same columns, shapes and types as real ones."""
    side = 32 * spec.grid
    shapes = {
        "image": ((0, 3, side, side), np.uint8),
        "size": ((0, 2), np.int32),
        "info_ids": ((0, spec.max_info_tokens), np.int32),
        "n_boxes": ((0,), np.int32),
        "truncated_boxes": ((0,), np.int32),
        "boxes": ((0, spec.max_boxes, 4), np.float32),
        "captions": ((0, spec.max_boxes, spec.max_caption_tokens + 2), np.int32),
        "chain": ((0, spec.max_boxes, 2), np.int32),
        "neighbours": ((0, spec.max_boxes, spec.slots), np.int32),
    }
    rows = {key: np.zeros(shape, dtype=dtype) for key, (shape, dtype) in shapes.items()}
    rows["image_id"] = np.zeros((0,), dtype=object)
    return rows


def build_dataset(
    dataset: str,
    split: str,
    tokenizer: Tokenizer,
    spec: EncodeSpec,
    *,
    images_root: str | None = None,
    actors: int = 1,
    limit: int | None = None,
    shuffle: bool = False,
    tally=None,
    batch_size: int = 16,
):
    """The lazily executed Ray Dataset of encoded images of one split."""
    import ray

    index = read_index(dataset, split, limit)
    if not index:
        raise DatasetFormatError(f"{dataset}: the '{split}' split is empty")
    blocks = max(1, min(len(index) // batch_size, 200))
    ds = ray.data.from_items(index, override_num_blocks=blocks)
    if shuffle:
        ds = ds.randomize_block_order()  # a new order every epoch; rows are shuffled locally too
    return ds.map_batches(
        EncodeImages,
        fn_constructor_kwargs=dict(
            dataset=dataset,
            images_root=images_root,
            word2int=tokenizer.word2int,
            mode=tokenizer.mode,
            spec=spec,
            tally=tally,
        ),
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, actors)),
        num_cpus=0.5,
    )
