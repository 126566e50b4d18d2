"""Streaming a release-format dataset to the trainers with Ray Data (image-major).

The workers read the split's rows from the dataset's table at its version (Ray Data's Delta Lake
reader, ``components.data.release.table``); an actor pool reads each image, checks
its record, masks the text boxes at the stored resolution, resizes to ``32k x 32k``, tokenises and
pads to fixed shapes (``components.data.transforms.encoding``). One row per image: the backbone runs once per
image downstream. A bad record or image is skipped and counted by reason in a ``RejectionTally``
actor, never fatal. Ray is imported where it is used, so that the pure parts load without it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from PIL import Image

from components.cluster import actor_pool
from components.data.record.images import open_image
from components.data.record.rejection import RecordRejected
from components.data.record.tokenizer import Tokenizer
from components.data.release.dataset import PreparedDataset
from components.data.release.format import CAPTIONS_FILE, ImageRecord, parse_record_value
from components.data.release.table import SplitRows, head_rows, ray_rows
from components.data.transforms.encoding import EncodeSpec, empty_rows, encode_record
from components.errors import DatasetFormatError

log = logging.getLogger(__name__)


class RejectionTally:
    """Skipped records by reason across every decoding actor (as a Ray actor, ``make_tally``), each
    record once: every epoch reads a bad record again, and it is still one bad record."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.examples: list[str] = []
        self.seen: set[str] = set()

    def add(self, reason: str, message: str) -> None:
        if message in self.seen:
            return
        self.seen.add(message)
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples) < 20:
            self.examples.append(message)

    def report(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "examples": list(self.examples)}


def _tally_class():
    import ray

    return ray.remote(num_cpus=0)(RejectionTally)


def make_tally(name: str | None = None):
    """A ``RejectionTally`` actor (named, so that a restarted worker group finds the same one)."""
    cls = _tally_class()
    return cls.options(name=name, get_if_exists=True).remote() if name else cls.remote()


def load_record(images_root: str, image_id: str, record_json: str) -> tuple[ImageRecord, Image.Image]:
    """A record and its image (local or object store), or ``RecordRejected`` naming the field."""
    if not record_json:
        raise RecordRejected(CAPTIONS_FILE, "missing_record", "listed in a split file but has no record")
    opened = open_image(images_root, f"{image_id}.png")
    return parse_record_value(image_id, json.loads(record_json), opened.image.size), opened.image


class EncodeImages:
    """``map_batches`` callable for an actor pool: table rows in, encoded image rows out."""

    def __init__(self, images_root: str, tokenizer: Tokenizer, spec: EncodeSpec, tally=None):
        self.images_root = images_root
        self.tokenizer = tokenizer
        self.spec = spec
        self.tally = tally

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = []
        for image_id, record_json in zip(batch["image_id"], batch["record"], strict=True):
            try:
                record, image = load_record(self.images_root, str(image_id), str(record_json))
                rows.append(encode_record(record, image, self.tokenizer, self.spec))
            except RecordRejected as rejected:
                message = str(rejected.rejection(str(image_id)).error())
                log.warning("skipping %s", message)
                if self.tally is not None:
                    self.tally.add.remote(rejected.reason, message)
        if not rows:
            return empty_rows(self.spec)
        return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def build_dataset(
    dataset: PreparedDataset,
    split: str,
    spec: EncodeSpec,
    *,
    actors: int = 1,
    limit: int | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    tally=None,
    batch_size: int = 16,
    index: list[dict[str, str]] | None = None,
):
    """The lazily executed Ray Dataset of encoded images of one split of the prepared ``dataset``
    (its table version, images and tokenizer). A whole split is read from the table on the workers;
    the first ``limit`` images, or ``index`` (the split's rows when the caller has already read them),
    go from the driver. ``shuffle`` randomises the block order at every execution (epoch), from
    ``seed`` when given: the same seed, the same sequence of orders."""
    import ray

    counted = dataset.table.split(split)
    _tally_duplicates(counted, split, tally)
    rows = index
    if rows is None and limit:
        rows = head_rows(dataset.table, split, limit)
    images = len(rows) if rows is not None else counted.rows
    if not images:
        raise DatasetFormatError(f"{dataset.location}: the '{split}' split is empty")
    blocks = max(1, min(images // batch_size, 200))
    if rows is not None:
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
    else:
        ds = ray_rows(dataset.table, split, blocks)
    if shuffle:
        # A new order every epoch, reproducible from the seed; rows are shuffled locally too.
        order = None if seed is None else ray.data.RandomSeedConfig(seed=seed, reseed_after_execution=True)
        ds = ds.randomize_block_order(seed=order)
    return ds.map_batches(
        EncodeImages,
        fn_constructor_kwargs=dict(
            images_root=dataset.images_root, tokenizer=dataset.tokenizer, spec=spec, tally=tally
        ),
        batch_size=batch_size,
        compute=actor_pool(actors),
        num_cpus=0.5,
    )


def _tally_duplicates(split_index: SplitRows, split: str, tally) -> None:
    """Ids the split file lists again are a row once (in the table); each is counted as skipped."""
    if not split_index.duplicate_count:
        return
    for image_id in split_index.duplicates:
        if tally is not None:
            tally.add.remote("duplicate_id", f"{image_id}: listed again in the {split} split; the first is kept")
    log.warning("%d ids listed twice in the %s split: each is read once", split_index.duplicate_count, split)
