"""Dataset versions: a release-format folder that grows by ingest, and every earlier state kept.

    DATASET/ref_captions.json, *_names.npy, word2int.json ...   the current version (what flows read)
    DATASET/images/<id>.png                                     every version's images (only ever added)
    DATASET/index/                                              the current version's Parquet index
    DATASET/versions/<version>/                                 each version's index files + manifest.json
                                                                 (and its Parquet index/)
    DATASET/ingest/ledger.json                                  partitions ingested: key, version, counts
    DATASET/ingest/image_digests.json                           image bytes' digests, for dedup

A version is named by ``content_version``: a hash of each split's ids and records and of the
vocabulary. Publishing writes the new version's folder whole (under a temporary name, then one
rename; on an object store ``ref_captions.json`` last, the release format's mark of a complete
folder), then brings the top level to it: a grown vocabulary first, then ``ref_captions.json`` (both
supersets: the old splits still select exactly the old records, and read them with the same ids),
then ``trn_names.npy``. A crash at any point leaves the top level reading the old records or the new
ones, never a half; after a crash between a grown vocabulary and ``trn_names.npy`` the old records
are read with the grown vocabulary (a version of its own, which the rerun of the ingest, its
partitions not yet in the ledger, publishes over). ``--set data.version=V`` reads an
earlier version back (``version_folder``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from components import storage
from components.data.record.images import image_digest
from components.data.record.tokenizer import INVERSE_VOCABULARY_FILE, VOCABULARY_FILE
from components.data.release.format import CAPTIONS_FILE, IMAGES_DIR, SPLIT_FILES, ImageRecord, names_bytes
from components.data.release.index import build_index, content_version, ensure_index, read_split_ids
from components.errors import DatasetFormatError

VERSIONS_DIR = "versions"
INGEST_DIR = "ingest"
MANIFEST_FILE = "manifest.json"
LEDGER_FILE = f"{INGEST_DIR}/ledger.json"
DIGESTS_FILE = f"{INGEST_DIR}/image_digests.json"


@dataclass
class DatasetState:
    """A release folder's index in memory: records, split ids, vocabulary files."""

    captions: dict[str, Any]
    splits: dict[str, list[str]]
    extras: dict[str, bytes] = field(default_factory=dict)  # vocabulary files, as stored

    @property
    def version(self) -> str:
        return content_version(self.captions, self.splits, self.extras.get(VOCABULARY_FILE, b""))

    def with_records(self, records: Sequence[ImageRecord], split: str = "train") -> DatasetState:
        """This state plus ``records``, appended to ``split``."""
        captions = {**self.captions, **{r.image_id: r.to_json() for r in records}}
        splits = {**self.splits, split: [*self.splits.get(split, []), *(r.image_id for r in records)]}
        return DatasetState(captions, splits, dict(self.extras))

    def files(self) -> dict[str, bytes]:
        """The index files, ``ref_captions.json`` last."""
        out = {SPLIT_FILES[split]: names_bytes(ids) for split, ids in self.splits.items()}
        out.update(self.extras)
        out[CAPTIONS_FILE] = json.dumps(self.captions, ensure_ascii=False).encode("utf-8")
        return out


def read_state(location: str) -> DatasetState:
    captions_uri = storage.join(location, CAPTIONS_FILE)
    if not storage.exists(captions_uri):
        raise DatasetFormatError(f"{location} is not a dataset folder: {CAPTIONS_FILE} is missing")
    captions = json.loads(storage.read_bytes(captions_uri).decode("utf-8"))
    extras = {}
    for name in (VOCABULARY_FILE, INVERSE_VOCABULARY_FILE):
        uri = storage.join(location, name)
        if storage.exists(uri):
            extras[name] = storage.read_bytes(uri)
    return DatasetState(captions, read_split_ids(location), extras)


def version_folder(dataset: str, version: str) -> str:
    """Where a version's index files are (its images are the dataset's ``images/``)."""
    folder = storage.join(dataset, VERSIONS_DIR, version)
    if not storage.exists(storage.join(folder, CAPTIONS_FILE)):
        known = ", ".join(v for v, _ in list_versions(dataset)) or "none yet"
        raise DatasetFormatError(f"{dataset} has no complete version {version!r} (versions: {known})")
    return folder


def images_folder(dataset: str) -> str:
    return storage.join(dataset, IMAGES_DIR)


def list_versions(dataset: str) -> list[tuple[str, dict[str, Any]]]:
    """(version, manifest) of every complete version, oldest first."""
    found = []
    for entry in storage.list_folder(storage.join(dataset, VERSIONS_DIR)):
        folder = storage.join(dataset, VERSIONS_DIR, entry.name)
        if entry.is_folder and storage.exists(storage.join(folder, CAPTIONS_FILE)):
            manifest_uri = storage.join(folder, MANIFEST_FILE)
            manifest = json.loads(storage.read_bytes(manifest_uri)) if storage.exists(manifest_uri) else {}
            found.append((entry.name, manifest))
    return sorted(found, key=lambda item: item[1].get("created", ""))


def write_version(dataset: str, state: DatasetState, manifest: dict[str, Any]) -> str:
    """``versions/<version>/`` holding ``state`` and its manifest, complete or absent; the version."""
    version = state.version
    target = storage.join(dataset, VERSIONS_DIR, version)
    if storage.exists(storage.join(target, CAPTIONS_FILE)):
        ensure_index(target)
        return version  # this content is a version already
    files = {MANIFEST_FILE: json.dumps({"version": version, **manifest}, indent=1).encode(), **state.files()}
    staging = target if storage.is_uri(dataset) else storage.join(dataset, VERSIONS_DIR, f".tmp-{uuid.uuid4().hex}")
    for name, data in files.items():  # ref_captions.json last
        storage.write_bytes(storage.join(staging, name), data)
    if staging != target:
        storage.delete(target)  # a half folder a crash left behind
        storage.move_folder(staging, target)
    build_index(target)
    return version


def publish(dataset: str, state: DatasetState, manifest: dict[str, Any]) -> str:
    """Make ``state`` the dataset's current version (see the module's docstring); the version."""
    current = read_state(dataset)
    added = set(state.splits.get("train", [])) - set(current.splits.get("train", []))
    if any(state.splits.get(s) != current.splits.get(s) for s in state.splits if s != "train") or not added <= set(
        state.captions
    ):
        raise ValueError("a new version only adds training records; val and test never change")
    write_version(dataset, current, {"created": timestamp(), "parent": None, "partitions": {}, "note": "before ingest"})
    version = write_version(dataset, state, {"created": timestamp(), "parent": current.version, **manifest})
    files = state.files()
    for name in (VOCABULARY_FILE, INVERSE_VOCABULARY_FILE):  # a grown vocabulary: a superset too
        if name in files and files[name] != current.extras.get(name):
            storage.write_bytes(storage.join(dataset, name), files[name])
    storage.write_bytes(storage.join(dataset, CAPTIONS_FILE), files[CAPTIONS_FILE])  # a superset first
    storage.write_bytes(storage.join(dataset, SPLIT_FILES["train"]), files[SPLIT_FILES["train"]])
    build_index(dataset)  # a crash before this leaves the index stale: its next reader rebuilds it
    return version


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- the ledger and the digests ------------------------------------------------------------------------
def load_ledger(dataset: str, current: str) -> dict[str, dict[str, Any]]:
    """Partition name -> what its ingest recorded (key, version, counts). The manifests of the current
    version and its ancestors are merged in, so a crash between publishing and saving the ledger loses
    nothing."""
    uri = storage.join(dataset, LEDGER_FILE)
    ledger = json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}
    manifests = dict(list_versions(dataset))
    version = current
    while version in manifests:
        for name, key in manifests[version].get("partitions", {}).items():
            ledger.setdefault(name, {"key": key, "version": version})
        version = manifests[version].get("parent")
    return ledger


def save_ledger(dataset: str, ledger: dict[str, dict[str, Any]]) -> None:
    storage.write_bytes(storage.join(dataset, LEDGER_FILE), json.dumps(ledger, indent=1, sort_keys=True).encode())


def load_digests(dataset: str, image_ids: Iterable[str]) -> dict[str, str]:
    """Image digest -> image id for ``image_ids``; the saved index, completed from the image files."""
    uri = storage.join(dataset, DIGESTS_FILE)
    digests: dict[str, str] = json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}
    indexed = set(digests.values())
    for image_id in image_ids:
        if image_id not in indexed:
            location = storage.join(images_folder(dataset), f"{image_id}.png")
            if storage.exists(location):
                digests.setdefault(image_digest(storage.read_bytes(location)), image_id)
    return digests


def save_digests(dataset: str, digests: dict[str, str]) -> None:
    storage.write_bytes(storage.join(dataset, DIGESTS_FILE), json.dumps(digests, sort_keys=True).encode())
