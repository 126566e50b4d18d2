"""A dataset split's index, read on the driver: image ids with their records, and the version hash.

The records travel as JSON text to the actors that decode images; a split id without a record is
kept (counted as ``missing_record`` downstream).
"""

from __future__ import annotations

import hashlib
import io
import json

from components import storage
from components.data.release import CAPTIONS_FILE, SPLIT_FILES, read_names
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


def dataset_version(dataset: str) -> str:
    """A short content hash of a dataset's captions file and split files: what scores are comparable on."""
    digest = hashlib.sha256()
    for name in (CAPTIONS_FILE, *sorted(SPLIT_FILES.values())):
        uri = storage.join(dataset, name)
        digest.update(name.encode())
        digest.update(storage.read_bytes(uri) if storage.exists(uri) else b"<absent>")
    return digest.hexdigest()[:12]
