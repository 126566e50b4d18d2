"""A dataset split's index, read on the driver: image ids with their records, and the version hash.

The records travel as JSON text to the actors that decode images; a split id without a record is
kept (counted as ``missing_record`` downstream).
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from components import storage
from components.data.release import CAPTIONS_FILE, SPLIT_FILES, read_names
from components.data.tokenizer import VOCABULARY_FILE
from components.errors import DatasetFormatError


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


def read_split_ids(dataset: str) -> dict[str, list[str]]:
    """The ids of every split that has a names file."""
    splits = {}
    for split, name in SPLIT_FILES.items():
        uri = storage.join(dataset, name)
        if storage.exists(uri):
            with io.BytesIO(storage.read_bytes(uri)) as handle:
                splits[split] = read_names(handle)
    return splits


def content_version(captions: dict[str, Any], splits: dict[str, list[str]], vocabulary: bytes = b"") -> str:
    """A short hash of what a dataset gives a model: each split's ids in order with their records, and
    the vocabulary. Records in no split do not count, nor does how the JSON was laid out."""
    digest = hashlib.sha256(vocabulary)
    for split in sorted(splits):
        digest.update(f"\n#{split}\n".encode())
        for image_id in splits[split]:
            record = json.dumps(captions.get(image_id), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            digest.update(f"{image_id}\t{record}\n".encode())
    return digest.hexdigest()[:12]


def dataset_version(dataset: str) -> str:
    """The version of a dataset folder: what scores are comparable on and what runs record having read."""
    captions = json.loads(storage.read_bytes(storage.join(dataset, CAPTIONS_FILE)).decode("utf-8"))
    vocabulary = storage.join(dataset, VOCABULARY_FILE)
    return content_version(
        captions, read_split_ids(dataset), storage.read_bytes(vocabulary) if storage.exists(vocabulary) else b""
    )
