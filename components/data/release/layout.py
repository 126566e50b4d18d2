"""A dataset folder's files beside its table: the images, and what ingest keeps between runs.

DATASET/images/<id>.png                 the images (the table's rows name them by id)
DATASET/ingest/fluency.json             the n-gram fluency model, shipped with the dataset
"""

from __future__ import annotations

from datetime import UTC, datetime

from components import storage
from components.data.release.format import IMAGES_DIR

INGEST_DIR = "ingest"


def images_folder(dataset: str) -> str:
    return storage.join(dataset, IMAGES_DIR)


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
