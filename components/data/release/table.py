"""A dataset's records as a Delta Lake table: versioned, append-only commits, read by version.

    DATASET/table/_delta_log/<version>.json        the table's history: one commit per version
    DATASET/table/split=<split>/part-*.parquet     rows (split, position, image_id, record, digests,
                                                   caption_keys)
    DATASET/images/<id>.png                        images stay files
    DATASET/vocabulary/<digest>/word2int.json      a vocabulary (and its int2word.json) as a version
                                                   names it: written once, before the commit naming it
    DATASET/<name>/                                a sidecar table: per-image lines beside the release
                                                   files (the synthetic truth), ``write_sidecar``

A row is one image of one split: ``position`` is its place in the split (the split file's order,
appended rows after), ``record`` the release record as JSON text with its keys in the order they were
imported ("" for an id a split file lists without a record: counted as ``missing_record``
downstream). An id a split file lists twice is a row once (the import's commit counts it); records in
no split are the split ``unsplit``, so that an export gives back every record imported. Two columns
serve an ingest's dedup without reading records: ``digests``, the SHA-256 of the image's bytes (the
stored file's, and an ingested image's crawled bytes), and ``caption_keys``, a 64-bit key of each
distinct caption (``caption_key``).

The release format (``ref_captions.json`` plus the split files) is the exchange format: ``import_release``
streams it into a new table (memory grows with the split files' ids, not with the records: records
go through position buckets on local scratch disk) and ``export_release`` writes a version back.
A commit's metadata (``caponimage.*`` in Delta's commitInfo) says what it was (an import, an ingest,
a migrated version), its tags (a crawl partition's name, an old version's name), the partitions it
ingested with their keys (the ingest ledger is the table's history), each split's ids without a
record and ids listed twice, and its vocabulary's folder. ``--set data.version=`` takes a version
number or a tag (``resolve_version``).

Appends commit with no retry on top of the version their caller read, each ingested partition as a
Delta app transaction: two ingests at once cannot both commit on the same version (the second gets
``ConcurrentCommit``), and a crash before the commit leaves only unreferenced files behind (the
version before stays the current one; the next run writes its own).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from components import storage
from components.data.record.images import image_digest
from components.data.record.tokenizer import INVERSE_VOCABULARY_FILE, VOCABULARY_FILE, Tokenizer
from components.data.record.untrusted import id_problem
from components.data.release.format import CAPTIONS_FILE, IMAGES_DIR, SPLIT_FILES, names_bytes, read_names
from components.data.release.jsonstream import iter_object_members
from components.errors import CapOnImageError, DatasetFormatError

log = logging.getLogger(__name__)

TABLE_DIR = "table"
VOCABULARY_DIR = "vocabulary"
ALL_RECORDS = "all"  # the split of a folder without split files: every record
UNSPLIT = "unsplit"  # records in no split of a folder that has split files
BUCKET_POSITIONS = 100_000  # split positions per scratch bucket: the records one bucket holds in memory
ROWS_PER_BATCH = 8_192  # rows handed to the writer at a time
ROWS_PER_FILE = 65_536  # a few dozen files for CapOnImage2M's train split
ROWS_PER_GROUP = 4_096  # a validation subset reads the first row groups only
READ_CPUS = 0.5  # a read task of a split: Parquet rows, light beside decoding images
DIGEST_READERS = 16  # image files read at once when an import digests them
KEPT_DUPLICATES = 10_000  # repeated ids named in the import's commit (all are counted)
META = "caponimage."  # our keys in a commit's metadata
OPERATIONS = ("import", "ingest", "migrate")  # our commits (Delta's own, such as OPTIMIZE, carry no metadata)
SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("position", pa.int64()),
        ("image_id", pa.string()),
        ("record", pa.string()),
        ("digests", pa.list_(pa.string())),  # the image's SHA-256 digests (none without its file)
        ("caption_keys", pa.list_(pa.int64())),  # caption_key of each distinct caption, sorted
    ]
)
ROW_COLUMNS = ["image_id", "record"]
TABLE_CONFIGURATION = {
    "delta.dataSkippingStatsColumns": "position",  # no statistics of JSON text
    # Every version stays readable, and its commit (tags, partitions: the ledger) stays in the log:
    # Delta's defaults drop log entries after 30 days and let VACUUM delete an old version's files.
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.deletedFileRetentionDuration": "interval 36500 days",
}
LOG_DIR = "_delta_log"
LOG_FILE = re.compile(r"\d{20}\.json")


class ConcurrentCommit(CapOnImageError):
    """Another writer committed to the table since this one read it: nothing of this one was
    committed; run it again to read the new version (a scheduler may retry: exit 75, EX_TEMPFAIL)."""

    exit_code = 75


# -- rows and their text ---------------------------------------------------------------------------------
def record_text(value: Any) -> str:
    """A record as a row holds it: compact JSON, its keys in their order (so that an export writes the
    same record back)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, an unpaired surrogate (which JSON and NumPy can hold, UTF-8 cannot) written as
    its escape ``\\udXXX``: such an id is imported, then refused as ``unsafe_id`` by the record check
    (a backslash is in no safe id), instead of stopping the import."""
    return text.encode("utf-8", "backslashreplace")


def storable(text: str) -> str:
    """``text`` as a row stores it (``utf8``)."""
    return utf8(text).decode("utf-8")


def caption_key(caption: str) -> int:
    """A caption's 64-bit key (BLAKE2b of its UTF-8): what dedup compares instead of the text. Among
    20 million distinct captions the chance that any two share a key is about 1e-5."""
    return int.from_bytes(hashlib.blake2b(utf8(caption), digest_size=8).digest(), "big", signed=True)


def caption_keys(text: str) -> list[int]:
    """The sorted keys of a record's distinct captions (its ``ocr_txts`` strings; none for a record
    that is not an object or holds no list)."""
    try:
        captions = json.loads(text).get("ocr_txts") if text else None
    except (ValueError, AttributeError):
        captions = None
    if not isinstance(captions, list):
        return []
    return sorted({caption_key(c) for c in captions if isinstance(c, str)})


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter), read as they come."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def table_uri(dataset: str) -> str:
    return storage.join(dataset, TABLE_DIR)


def delta_path(uri: str) -> str:
    """A table's location as Delta Lake names it (an absolute path, or the URI)."""
    return uri if storage.is_uri(uri) else storage.resolve(uri)[1]


def delta_location(dataset: str) -> str:
    """The dataset's table as Delta Lake names it."""
    return delta_path(table_uri(dataset))


def has_table(dataset: str) -> bool:
    return storage.exists(storage.join(table_uri(dataset), "_delta_log"))


# -- versions ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitRows:
    rows: int  # images, each id once
    missing_records: int = 0  # ids with no record
    duplicate_count: int = 0  # listings of an id already listed (at import)
    duplicates: tuple[str, ...] = ()  # those ids, the first KEPT_DUPLICATES


@dataclass(frozen=True)
class Commit:
    """One version of the table as its history tells it."""

    number: int
    created: str  # ISO time
    operation: str  # import, ingest, migrate
    tags: tuple[str, ...] = ()
    partitions: dict[str, str] = field(default_factory=dict)  # ingested partition -> its key
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)  # missing records, duplicates
    vocabulary: str | None = None  # the folder of its vocabulary files, relative to the dataset
    note: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_history(cls, entry: dict[str, Any]) -> Commit:
        def value(key: str, default: Any) -> Any:
            text = entry.get(META + key)
            return default if text is None else json.loads(text)

        stamp = datetime.fromtimestamp(int(entry.get("timestamp", 0)) / 1000, UTC).isoformat(timespec="seconds")
        return cls(
            int(entry["version"]),
            stamp,
            value("operation", entry.get("operation", "")),
            tuple(value("tags", [])),
            dict(value("partitions", {})),
            dict(value("splits", {})),
            value("vocabulary", None),
            dict(value("note", {})),
        )


def commit_metadata(
    operation: str,
    *,
    tags: Sequence[str] = (),
    partitions: dict[str, str] | None = None,
    splits: dict[str, dict[str, Any]] | None = None,
    vocabulary: str | None = None,
    note: dict[str, Any] | None = None,
) -> dict[str, str]:
    """A commit's ``caponimage.*`` metadata (see ``Commit``), each value as JSON text."""
    values = {"operation": operation, "tags": list(tags), "partitions": partitions or {}, "splits": splits or {}}
    values.update(vocabulary=vocabulary, note=note or {})
    return {META + key: json.dumps(value, ensure_ascii=False) for key, value in values.items()}


def delta_options(dataset: str) -> dict[str, str] | None:
    """Delta Lake's storage options for an object store: the S3-compatible endpoint pyarrow reads
    (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``) and the region; credentials stay in the environment."""
    if not dataset.startswith("s3://"):
        return None
    options = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options.update(AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP=str(endpoint.startswith("http://")).lower())
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["AWS_REGION"] = region
    return options


def _delta_table(dataset: str, number: int | None = None, folder: str = TABLE_DIR):
    """The Delta table ``DATASET/<folder>/`` (the dataset's own by default) at version ``number``."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = storage.join(dataset, folder)
    try:
        return DeltaTable(delta_path(uri), version=number, storage_options=delta_options(dataset))
    except TableNotFoundError as err:
        raise DatasetFormatError(f"{dataset} has no table ({uri}): import it first") from err
    except Exception as err:  # delta-rs says a version is absent with a generic error
        if number is not None and "version" in str(err).lower():
            raise DatasetFormatError(f"{dataset} has no version {number} ({err})") from err
        raise


def commit_info(uri: str, number: int) -> dict[str, Any] | None:
    """Version ``number``'s ``commitInfo`` action in the Delta table at ``uri`` (``{}`` without one;
    None when its log file is gone). Read from the log directly: one small file, the same on a disk
    and on S3 (delta-rs's ``history()`` hangs on the S3 test server)."""
    location = storage.join(uri, LOG_DIR, f"{number:020d}.json")
    if not storage.exists(location):
        return None
    for line in storage.read_bytes(location).decode("utf-8").splitlines():
        action = json.loads(line) if line.strip() else {}
        if "commitInfo" in action:
            return action["commitInfo"]
    return {}


def read_commit(dataset: str, number: int) -> Commit | None:
    """Version ``number``'s commit as its log file says it; None when the file is gone."""
    info = commit_info(table_uri(dataset), number)
    if info is None:
        return None
    return Commit.from_history({**info, "version": number}) if info else Commit(number, "", "")


def history(dataset: str) -> list[Commit]:
    """Every version of the table, oldest first."""
    numbers = [int(e.name[:-5]) for e in storage.list_folder(storage.join(table_uri(dataset), LOG_DIR))
               if LOG_FILE.fullmatch(e.name)]  # fmt: skip
    if not numbers:
        _delta_table(dataset)  # names the missing table
    return [c for c in (read_commit(dataset, n) for n in sorted(numbers)) if c is not None]


def resolve_version(dataset: str, version: int | str | None) -> int | None:
    """A version number from a number or a tag (``None``: the latest); ``DatasetFormatError`` naming
    the versions and tags there are."""
    if version is None:
        return None
    commits = history(dataset)
    text = str(version).strip()
    number = int(text.removeprefix("v")) if text.removeprefix("v").isdigit() else None
    for commit in reversed(commits):
        if commit.number == number or text in commit.tags:
            return commit.number
    tags = ", ".join(t for c in commits for t in c.tags) or "none"
    raise DatasetFormatError(
        f"{dataset} has no version or tag {text!r} (versions 0 to {commits[-1].number}; tags: {tags})"
    )


@dataclass(frozen=True)
class DatasetTable:
    """One version of a dataset's table, as a flow reads it."""

    dataset: str  # the dataset folder
    number: int  # the table's version
    splits: dict[str, SplitRows]  # each split's rows (records in no split are not a split)
    files_by_split: dict[str, tuple[str, ...]]  # each split's files (relative to the table), in split order
    commit: Commit  # the commit that made this version
    unsplit: int = 0  # records in no split

    @property
    def uri(self) -> str:
        return table_uri(self.dataset)

    @property
    def version(self) -> str:
        """What runs record having read and scores are comparable on: the table's version number."""
        return str(self.number)

    def split(self, name: str) -> SplitRows:
        if name not in self.splits:
            raise DatasetFormatError(f"{self.dataset} has no {SPLIT_FILES.get(name, name)} for the '{name}' split")
        return self.splits[name]

    def files(self, split: str) -> list[str]:
        """A split's files (``unsplit`` too), in split order."""
        if split != UNSPLIT:
            self.split(split)
        return [storage.join(self.uri, name) for name in self.files_by_split.get(split, ())]


def open_table(dataset: str, version: int | str | None = None) -> DatasetTable:
    """A version of the dataset's table (a number or a tag; ``None``: the latest): what readers open."""
    return _table_at(dataset, resolve_version(dataset, version))


def _table_at(dataset: str, number: int | None) -> DatasetTable:
    """Version ``number`` (``None``: the latest) as its log describes it: the files of each split in
    position order, the counts its commit carries."""
    delta = _delta_table(dataset, number)
    number = delta.version()
    actions = pa.table(delta.get_add_actions(flatten=True))
    found: dict[str, list[tuple[int, str, int]]] = {}
    for path, split, first, rows in zip(
        actions["path"].to_pylist(),
        actions["partition.split"].to_pylist(),
        actions["min.position"].to_pylist(),
        actions["num_records"].to_pylist(),
        strict=True,
    ):
        found.setdefault(split, []).append((first or 0, path, rows or 0))
    commit = _our_commit(dataset, number)
    counted = commit.splits  # every commit carries the import's counts forward
    splits, files = {}, {}
    for name in sorted(found, key=_split_order):
        parts = sorted(found[name])
        info = counted.get(name, {})
        splits[name] = SplitRows(
            sum(rows for _, _, rows in parts),
            int(info.get("missing_records", 0)),
            int(info.get("duplicate_count", 0)),
            tuple(info.get("duplicates", ())),
        )
        files[name] = tuple(path for _, path, _ in parts)
    unsplit = splits.pop(UNSPLIT, SplitRows(0)).rows
    return DatasetTable(dataset, number, splits, files, commit, unsplit)


def _our_commit(dataset: str, number: int) -> Commit:
    """The version's commit, or the last of ours before it (Delta's own, such as OPTIMIZE, carry no
    metadata of ours)."""
    for candidate in range(number, -1, -1):
        commit = read_commit(dataset, candidate)
        if commit is not None and commit.operation in OPERATIONS:
            return commit
    raise DatasetFormatError(f"{table_uri(dataset)} holds no commit of this project up to version {number}")


def _split_order(name: str) -> tuple[int, str]:
    order = [*SPLIT_FILES, ALL_RECORDS, UNSPLIT]
    return (order.index(name) if name in order else len(order), name)


# -- reading rows ------------------------------------------------------------------------------------------
def _parquet_file(uri: str) -> pq.ParquetFile:
    filesystem, path = storage.resolve(uri)
    return pq.ParquetFile(filesystem.open_input_file(path), page_checksum_verification=True)


def iter_rows(table: DatasetTable, split: str, limit: int | None = None) -> Iterator[dict[str, str]]:
    """``{"image_id", "record"}`` of a split in order, the first ``limit`` when given, read a row group
    at a time."""
    rows = table.unsplit if split == UNSPLIT else table.split(split).rows
    left = rows if limit is None else min(limit, rows)
    for uri in table.files(split):
        if left <= 0:
            return
        try:
            batches = _parquet_file(uri).iter_batches(batch_size=ROWS_PER_GROUP, columns=ROW_COLUMNS)
            for batch in batches:
                rows = batch.slice(0, left).to_pylist()
                yield from rows
                left -= len(rows)
                if left <= 0:
                    return
        except (pa.ArrowException, OSError) as err:
            raise DatasetFormatError(f"table file {uri} cannot be read ({err})") from err


def scan_columns(table: DatasetTable, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of every row of the version (every split, ``unsplit`` too), a row group at a time:
    for the questions about the whole dataset an ingest asks (is this id, digest, caption there?), in
    memory that does not grow with the table."""
    for split in [*table.splits, UNSPLIT]:
        for uri in table.files(split):
            try:
                yield from _parquet_file(uri).iter_batches(batch_size=ROWS_PER_GROUP, columns=list(columns))
            except (pa.ArrowException, OSError) as err:
                raise DatasetFormatError(f"table file {uri} cannot be read ({err})") from err


def head_rows(table: DatasetTable, split: str, limit: int | None = None) -> list[dict[str, str]]:
    """``[{"image_id", "record"}]`` of a split on the driver, in split order: for the rows a caller
    keeps anyway (a validation subset, an evaluated split); training reads its split on the workers."""
    return list(iter_rows(table, split, limit))


def read_split(dataset: str, split: str, limit: int | None = None, version: int | str | None = None):
    """``head_rows`` of a dataset's version (the latest by default; release files are imported first)."""
    return head_rows(ensure_table(dataset, version), split, limit)


def read_blocks(table: DatasetTable, split: str, blocks: int) -> int:
    """The ``override_num_blocks`` that reads a split in about ``blocks`` blocks. Ray Data's Delta Lake
    reader makes a read task of every file of the version, keeps the split's rows inside each, and
    cuts every task's output into ``ceil(override_num_blocks / tasks)`` blocks: the split's blocks
    are its share of the files. Asking for ``blocks`` alone left the default dataset's one training
    file in a third of them (the validation and test files are read tasks too), three times the
    rows per block, and an epoch's block shuffle moves whole blocks."""
    files = sum(len(names) for names in table.files_by_split.values())
    own = len(table.files_by_split.get(split, ()))
    return max(1, math.ceil(max(1, blocks) * files / max(1, own)))


def ray_rows(table: DatasetTable, split: str, blocks: int):
    """A split as a Ray Dataset of rows ``{"image_id", "record"}`` read on the workers by Ray Data's
    Delta Lake reader, at the table's version, in about ``blocks`` blocks (``read_blocks``). A read
    task asks for ``READ_CPUS``: Ray Data's default of a whole CPU, beside the training workers and
    the encoding actors, left concurrent Tune trials on a small cluster each waiting for the CPU
    another held."""
    import ray

    table.split(split)
    return ray.data.read_delta(
        delta_location(table.dataset),
        version=table.number,
        storage_options=delta_options(table.dataset),
        columns=ROW_COLUMNS,
        filter=pc.field("split") == split,
        override_num_blocks=read_blocks(table, split, blocks),
        num_cpus=READ_CPUS,
    )


# -- importing the release format ---------------------------------------------------------------------------
def read_split_ids(dataset: str) -> dict[str, list[str]]:
    """The ids of every split that has a names file."""
    splits = {}
    for split, name in SPLIT_FILES.items():
        uri = storage.join(dataset, name)
        if storage.exists(uri):
            with io.BytesIO(storage.read_bytes(uri)) as handle:
                splits[split] = read_names(handle)
    return splits


class _Positions:
    """Where each id sits in the split files: its first listing per split, and the repeats."""

    def __init__(self, splits: dict[str, list[str]]):
        self.names = sorted(splits, key=_split_order)
        self.ids = {name: splits[name] for name in self.names}
        self.first: dict[str, int] = {}  # id -> its first listing's code (split number, position)
        self.more: dict[str, list[int]] = {}  # ids listed first in more than one split
        self.repeated: dict[str, list[int]] = {}  # split -> positions of later listings
        for number, name in enumerate(self.names):
            seen: set[str] = set()
            for position, image_id in enumerate(self.ids[name]):
                if image_id in seen:
                    self.repeated.setdefault(name, []).append(position)
                    continue
                seen.add(image_id)
                code = (number << 40) | position
                if image_id not in self.first:
                    self.first[image_id] = code
                else:
                    self.more.setdefault(image_id, []).append(code)

    def codes(self, image_id: str) -> list[int]:
        first = self.first.get(image_id)
        return [] if first is None else [first, *self.more.get(image_id, [])]

    def repeated_ids(self) -> set[str]:
        return {self.ids[name][p] for name, positions in self.repeated.items() for p in positions}


class _Buckets:
    """Records spilled to scratch files by (split, position bucket), then read back one bucket at a time."""

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.handles: dict[tuple[int, int], Any] = {}

    def add(self, code: int, text: str) -> None:
        number, position = code >> 40, code & ((1 << 40) - 1)
        key = (number, position // BUCKET_POSITIONS)
        if key not in self.handles:
            self.handles[key] = open(self.folder / f"{key[0]}-{key[1]}", "ab")  # noqa: SIM115 closed in close()
        self.handles[key].write(utf8(f"{position}\t{text}\n"))

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()

    def records(self, number: int, bucket: int) -> dict[int, str]:
        """Position -> record text of one bucket; a later member of the captions file wins, as in
        ``json.loads``."""
        path = self.folder / f"{number}-{bucket}"
        if not path.exists():
            return {}
        found = {}
        with open(path, "rb") as handle:
            for line in handle:
                position, text = line.decode("utf-8").rstrip("\n").split("\t", 1)
                found[int(position)] = text
        return found


def captions_members(source: str) -> Iterator[tuple[str, Any]]:
    uri = storage.join(source, CAPTIONS_FILE)
    if not storage.exists(uri):
        raise DatasetFormatError(f"{source} is not a dataset folder: {CAPTIONS_FILE} is missing")
    filesystem, path = storage.resolve(uri)
    with filesystem.open_input_stream(path) as stream:
        yield from iter_object_members(stream, name=uri)


class _Import:
    """One streaming pass over a release folder into rows, split by split in split order."""

    def __init__(self, source: str, scratch: str, images: str | None):
        splits = read_split_ids(source)
        self.images = images  # the dataset's images folder (None: no images to digest)
        self.source, self.unsplit_ids, self.splits_info = source, [], {}
        if not splits:  # no split files: every record, in the file's order, as the split "all"
            splits = {ALL_RECORDS: [image_id for image_id, _ in captions_members(source)]}
        self.positions = _Positions(splits)
        self.buckets = _Buckets(scratch)
        self.repeats: dict[str, str] = {}
        self.written: dict[str, int] = {}  # split -> rows written: the next row's position
        self.unsplit_file = Path(scratch) / "unsplit"

    def stream(self) -> None:
        """Every member of the captions file into its buckets (records in no split to their own file)."""
        repeated, found = self.positions.repeated_ids(), set()
        try:
            with open(self.unsplit_file, "wb") as unsplit:
                for image_id, value in captions_members(self.source):
                    text = record_text(value)
                    codes = self.positions.codes(image_id)
                    if not codes:
                        unsplit.write(utf8(f"{image_id}\t{text}\n"))
                    for code in codes:
                        self.buckets.add(code, text)
                    if codes:
                        found.add(image_id)
                    if image_id in repeated:
                        self.repeats[image_id] = text
        finally:
            self.buckets.close()
        for name in self.positions.names:  # counted before the rows are written: the commit says them
            duplicates = [self.positions.ids[name][p] for p in self.positions.repeated.get(name, [])]
            unique = set(self.positions.ids[name])
            self.splits_info[name] = {
                "missing_records": len(unique - found),
                "duplicate_count": len(duplicates),
                "duplicates": duplicates[:KEPT_DUPLICATES],
            }

    def batches(self) -> Iterator[pa.RecordBatch]:
        for number, name in enumerate(self.positions.names):
            yield from self._batches(name, self._split_rows(number, name))
        yield from self._batches(UNSPLIT, self._unsplit_rows())

    def _batches(self, name: str, rows: Iterable[tuple[str, str]]) -> Iterator[pa.RecordBatch]:
        for chunk in chunks(rows, ROWS_PER_BATCH):
            yield _batch(name, chunk, self._next_position(name, len(chunk)), file_digests(self.images, chunk))

    def _split_rows(self, number: int, name: str) -> Iterator[tuple[str, str]]:
        """``(image id, record text)`` of a split in its order, each id's first listing only."""
        ids, repeated = self.positions.ids[name], set(self.positions.repeated.get(name, []))
        for bucket in range((len(ids) + BUCKET_POSITIONS - 1) // BUCKET_POSITIONS):
            records = self.buckets.records(number, bucket)
            for position in range(bucket * BUCKET_POSITIONS, min(len(ids), (bucket + 1) * BUCKET_POSITIONS)):
                if position not in repeated:
                    yield storable(ids[position]), records.get(position) or ""

    def _unsplit_rows(self) -> Iterator[tuple[str, str]]:
        with open(self.unsplit_file, "rb") as handle:
            for line in handle:
                image_id, text = line.decode("utf-8").rstrip("\n").split("\t", 1)
                yield image_id, text

    def _next_position(self, name: str, count: int) -> int:
        """The first position of the next ``count`` rows of ``name`` (positions count rows, not listings)."""
        start = self.written.get(name, 0)
        self.written[name] = start + count
        return start


def _batch(
    split: str, rows: Sequence[tuple[str, str]], first_position: int, digests: Mapping[str, Sequence[str]]
) -> pa.RecordBatch:
    """Rows (image id, record text) from ``first_position`` on, with their images' ``digests`` by id."""
    return pa.record_batch(
        [
            pa.array([split] * len(rows), pa.string()),
            pa.array(range(first_position, first_position + len(rows)), pa.int64()),
            pa.array([image_id for image_id, _ in rows], pa.string()),
            pa.array([text for _, text in rows], pa.string()),
            pa.array([list(digests.get(image_id, ())) for image_id, _ in rows], pa.list_(pa.string())),
            pa.array([caption_keys(text) for _, text in rows], pa.list_(pa.int64())),
        ],
        schema=SCHEMA,
    )


def file_digests(images: str | None, rows: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """The SHA-256 of each row's image file in ``images`` (rows with a record whose file is there),
    read ``DIGEST_READERS`` files at a time: on an object store each is a request."""
    if images is None:
        return {}
    filesystem, root = storage.resolve(images)

    def digest(image_id: str) -> list[str]:
        try:
            with filesystem.open_input_stream(f"{root}/{image_id}.png") as handle:
                return [image_digest(handle.readall())]
        except OSError:  # no file (FileNotFoundError), or one that cannot be read: no digest
            return []

    ids = [image_id for image_id, text in rows if text and id_problem(image_id) is None]  # a file name it may have
    with ThreadPoolExecutor(DIGEST_READERS) as pool:
        return {image_id: found for image_id, found in zip(ids, pool.map(digest, ids), strict=True) if found}


FILE_SCHEMA = pa.schema([f for f in SCHEMA if f.name != "split"])  # the partition column is in the log


class _DataFiles:
    """Rows written as the table's Parquet files in the order given: each split's rows into files of
    ``ROWS_PER_FILE`` rows (each file a contiguous range of positions, so files in position order
    read a split in order), row groups of ``ROWS_PER_GROUP`` (a head reads the first ones only), page
    checksums on (a garbled page fails its read instead of passing as other records). Each file
    becomes an add action of the commit, with its row count and position range."""

    def __init__(self, dataset: str):
        self.root = table_uri(dataset)
        self.actions: list = []
        self.split: str | None = None
        self.writer: pq.ParquetWriter | None = None
        self.path, self.rows, self.first = "", 0, 0

    def write(self, batches: Iterable[pa.RecordBatch]) -> list:
        for batch in batches:
            split = batch.column(0)[0].as_py() if batch.num_rows else self.split
            if split != self.split or self.rows >= ROWS_PER_FILE:
                self.close()
                self.split = split
            if self.writer is None:
                self.open(batch.column(1)[0].as_py())
            self.writer.write_batch(pa.RecordBatch.from_arrays(batch.columns[1:], schema=FILE_SCHEMA))
            self.rows += batch.num_rows
        self.close()
        return self.actions

    def open(self, first: int) -> None:
        filesystem, root = storage.resolve(self.root)
        self.path = f"split={self.split}/part-{uuid.uuid4().hex}.zstd.parquet"
        filesystem.create_dir(f"{root}/split={self.split}", recursive=True)
        self.writer = pq.ParquetWriter(
            f"{root}/{self.path}", FILE_SCHEMA, filesystem=filesystem, compression="zstd", write_page_checksum=True
        )
        self.rows, self.first = 0, first

    def close(self) -> None:
        from deltalake.transaction import AddAction

        if self.writer is None:
            return
        self.writer.close()
        filesystem, root = storage.resolve(self.root)
        size = filesystem.get_file_info(f"{root}/{self.path}").size
        last = self.first + self.rows - 1
        stats = {"numRecords": self.rows, "minValues": {"position": self.first}, "maxValues": {"position": last},
                 "nullCount": {"position": 0}}  # fmt: skip
        modified = int(time.time() * 1000)
        self.actions.append(AddAction(self.path, size, {"split": self.split}, modified, True, json.dumps(stats)))
        self.writer = None


def _delta_schema():
    from deltalake import Schema

    return Schema.from_arrow(SCHEMA)


def import_release(
    dataset: str, source: str | None = None, *, tags: Sequence[str] = (), replace: bool = False
) -> DatasetTable:
    """The release files of ``source`` (default: the dataset folder itself) as the dataset's table:
    a new table (``replace``: a new version of an existing one, replacing its rows). Its vocabulary
    files are stored as the version names them (``store_vocabulary``)."""
    from deltalake import CommitProperties
    from deltalake.transaction import create_table_with_add_actions

    source = source or dataset
    if has_table(dataset) and not replace:
        raise DatasetFormatError(f"{dataset} has a table already ({table_uri(dataset)}); pass replace to import anew")
    with tempfile.TemporaryDirectory(prefix="caponimage-import-") as scratch:
        images = storage.join(dataset, IMAGES_DIR)
        reading = _Import(source, scratch, images if storage.exists(images) else None)
        reading.stream()
        actions = _DataFiles(dataset).write(reading.batches())
    metadata = commit_metadata(
        "import",
        tags=tags,
        splits=reading.splits_info,
        vocabulary=store_source_vocabulary(source, dataset),
        note={"source": storage.join(source, CAPTIONS_FILE) if source != dataset else CAPTIONS_FILE},
    )
    create_table_with_add_actions(
        delta_location(dataset),
        _delta_schema(),
        actions,
        mode="overwrite" if replace else "error",
        partition_by=["split"],
        configuration=TABLE_CONFIGURATION,
        storage_options=delta_options(dataset),
        commit_properties=CommitProperties(custom_metadata=metadata),
    )
    table = _table_at(dataset, None)
    log.info("imported %s into %s: version %s, %s", source, table.uri, table.version, describe_sizes(table))
    return table


def store_source_vocabulary(source: str, dataset: str) -> str | None:
    """The source's vocabulary files stored as a version names them (``store_vocabulary``), if it has one."""
    files = {}
    for name in (VOCABULARY_FILE, INVERSE_VOCABULARY_FILE):
        if storage.exists(storage.join(source, name)):
            files[name] = storage.read_bytes(storage.join(source, name))
    return store_vocabulary(dataset, files) if VOCABULARY_FILE in files else None


def store_vocabulary(dataset: str, files: dict[str, bytes]) -> str:
    """``vocabulary/<digest>/`` holding ``files`` (word2int.json and int2word.json as given), written
    before any commit names it: an ingest that fails to commit leaves a folder nothing reads, never a
    vocabulary that changed under a version. The folder relative to the dataset."""
    digest = hashlib.sha256(files[VOCABULARY_FILE]).hexdigest()[:16]
    folder = f"{VOCABULARY_DIR}/{digest}"
    for name, data in files.items():
        location = storage.join(dataset, folder, name)
        if not storage.exists(location):
            storage.write_bytes(location, data)
    return folder


def describe_sizes(table: DatasetTable) -> str:
    return ", ".join(f"{name} {rows.rows} images" for name, rows in table.splits.items()) or "no splits"


def ensure_table(dataset: str, version: int | str | None = None) -> DatasetTable:
    """The dataset's table at ``version`` (the latest by default); a folder of release files without
    one is imported first (once: afterwards the table is the dataset, the files what it came from)."""
    if not has_table(dataset):
        if not storage.exists(storage.join(dataset, CAPTIONS_FILE)):
            raise DatasetFormatError(f"{dataset} is not a dataset: no table and no {CAPTIONS_FILE} to import")
        log.info("%s has no table yet: importing its release files", dataset)
        import_release(dataset)
    return open_table(dataset, version)


# -- appending --------------------------------------------------------------------------------------------------
def append_rows(
    table: DatasetTable,
    split: str,
    rows: Sequence[tuple[str, str]],
    *,
    partitions: dict[str, str] | None = None,
    tags: Sequence[str] = (),
    vocabulary: str | None = None,
    note: dict[str, Any] | None = None,
    operation: str = "ingest",
    digests: Mapping[str, Sequence[str]] | None = None,
) -> DatasetTable:
    """``rows`` (image id, record text) appended to ``split`` as one commit on top of ``table``'s
    version: ``ConcurrentCommit`` when another writer committed since (nothing of this one is then
    committed). Each partition is an app transaction of the commit (``partition_app``); ``vocabulary``:
    the version's vocabulary folder (``store_vocabulary``; the parent's when not given); ``digests``:
    the images' digests by id (default: each row's image file in the dataset's ``images/``, digested)."""
    from deltalake import CommitProperties, Transaction
    from deltalake.exceptions import CommitFailedError

    first = table.splits[split].rows if split in table.splits else 0
    rows = [(storable(i), text) for i, text in rows]
    if digests is None:
        images = storage.join(table.dataset, IMAGES_DIR)
        digests = file_digests(images if storage.exists(images) else None, rows)
    batches = [_batch(split, rows[s : s + ROWS_PER_BATCH], first + s, digests)
               for s in range(0, len(rows), ROWS_PER_BATCH)]  # fmt: skip
    actions = _DataFiles(table.dataset).write(batches)
    delta = _delta_table(table.dataset, table.number)
    transactions = [Transaction(partition_app(name), delta.transaction_version(partition_app(name)) or 0)
                    for name in partitions or {}]  # fmt: skip
    transactions = [Transaction(t.app_id, t.version + 1) for t in transactions]
    metadata = commit_metadata(
        operation,
        tags=tags,
        partitions=partitions,
        splits=table.commit.splits,
        vocabulary=vocabulary or table.commit.vocabulary,
        note=note,
    )
    try:
        delta.create_write_transaction(
            actions,
            "append",
            _delta_schema(),
            partition_by=["split"],
            commit_properties=CommitProperties(
                custom_metadata=metadata, max_commit_retries=0, app_transactions=transactions
            ),
        )
    except CommitFailedError as err:
        raise ConcurrentCommit(
            f"{table.uri}: another writer committed on top of version {table.number} first ({err}); "
            "nothing of this commit was kept"
        ) from err
    return _table_at(table.dataset, table.number + 1)  # with no retry ours is the next version, whatever follows


def partition_app(name: str) -> str:
    """A crawl partition's Delta app id: its transaction version counts its ingests."""
    return f"caponimage-partition:{name}"


def partition_ledger(dataset: str, number: int | None = None) -> dict[str, dict[str, Any]]:
    """Partition name -> what its last ingest recorded (key, version, when), up to version ``number``."""
    ledger = {}
    for commit in history(dataset):
        if number is not None and commit.number > number:
            break
        for name, key in commit.partitions.items():
            ledger[name] = {"key": key, "version": str(commit.number), "ingested_at": commit.created}
    return ledger


# -- exporting -------------------------------------------------------------------------------------------------
def export_release(table: DatasetTable, out: str) -> None:
    """The version's release files in ``out``: ``ref_captions.json`` (each record's text as imported, in
    split order, an id in two splits once), the split files, the version's vocabulary. Images are the
    dataset's ``images/`` (not copied)."""
    seen: set[str] = set()
    ids: dict[str, list[str]] = {}
    filesystem, path = storage.resolve(storage.join(out, CAPTIONS_FILE))
    filesystem.create_dir(os.path.dirname(path), recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(b"{")
        for name in [*table.splits, UNSPLIT]:
            kept = ids.setdefault(name, [])
            for row in iter_rows(table, name):
                kept.append(row["image_id"])
                if row["record"] and row["image_id"] not in seen:
                    stream.write(b"" if not seen else b", ")
                    stream.write(utf8(f"{json.dumps(row['image_id'], ensure_ascii=False)}: "))
                    stream.write(_spaced(row["record"]))
                    seen.add(row["image_id"])
        stream.write(b"}")
    for name, names in ids.items():
        if name in SPLIT_FILES:
            storage.write_bytes(storage.join(out, SPLIT_FILES[name]), names_bytes(names))
    for name, data in version_vocabulary_files(table).items():
        storage.write_bytes(storage.join(out, name), data)


def _spaced(text: str) -> bytes:
    """A record's compact JSON as ``json.dumps`` lays it out by default (``", "`` and ``": "``), as the
    release writer does."""
    return json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")


def version_vocabulary_files(table: DatasetTable) -> dict[str, bytes]:
    """The version's vocabulary files as stored (none when its dataset has no vocabulary)."""
    if table.commit.vocabulary is None:
        return {}
    folder = storage.join(table.dataset, table.commit.vocabulary)
    names = (VOCABULARY_FILE, INVERSE_VOCABULARY_FILE)
    return {
        name: storage.read_bytes(storage.join(folder, name))
        for name in names
        if storage.exists(storage.join(folder, name))
    }


def version_vocabulary(table: DatasetTable) -> Tokenizer | None:
    """The version's vocabulary, if its dataset has one."""
    files = version_vocabulary_files(table)
    if VOCABULARY_FILE not in files:
        return None
    return Tokenizer.from_vocabulary(json.loads(files[VOCABULARY_FILE].decode("utf-8")))


def iter_texts(table: DatasetTable, split: str) -> Iterable[str]:
    """Every caption and info text of a split, streamed."""
    for row in iter_rows(table, split):
        record = json.loads(row["record"]) if row["record"] else {}
        yield from (t for t in (*record.get("ocr_txts", []), record.get("info", "")) if isinstance(t, str))


# -- sidecar tables ---------------------------------------------------------------------------------------------
SIDECAR_SCHEMA = pa.schema([("image_id", pa.string()), ("line", pa.string())])


def write_sidecar(dataset: str, name: str, header: str, lines: Iterable[tuple[str, str]]) -> None:
    """``DATASET/<name>/``: per-image lines (image id, the line's text as given) as a Delta table of
    their own, ``header`` in its commit (``caponimage.header``); a new version replacing the rows when
    it exists. For files of per-image lines beside the release files (the synthetic truth): their own
    table, never columns of the rows training reads."""
    from deltalake import CommitProperties, write_deltalake

    uri = storage.join(dataset, name)

    def batch(rows: list[tuple[str, str]]) -> pa.RecordBatch:
        ids, texts = [image_id for image_id, _ in rows], [text for _, text in rows]
        return pa.record_batch([pa.array(ids, pa.string()), pa.array(texts, pa.string())], schema=SIDECAR_SCHEMA)

    batches = (batch(rows) for rows in chunks(lines, ROWS_PER_BATCH))

    exists = storage.exists(storage.join(uri, LOG_DIR))
    write_deltalake(
        delta_path(uri),
        pa.RecordBatchReader.from_batches(SIDECAR_SCHEMA, batches),
        mode="overwrite" if exists else "error",
        configuration=None if exists else TABLE_CONFIGURATION,
        storage_options=delta_options(dataset),
        commit_properties=CommitProperties(custom_metadata={META + "header": header}),
    )


def read_sidecar(dataset: str, name: str) -> tuple[str, list[dict[str, str]]] | None:
    """(the header, the rows ``{"image_id", "line"}``) of the sidecar table ``DATASET/<name>/`` at its
    latest version; None when there is none."""
    uri = storage.join(dataset, name)
    if not storage.exists(storage.join(uri, LOG_DIR)):
        return None
    delta = _delta_table(dataset, folder=name)
    header = (commit_info(uri, delta.version()) or {}).get(META + "header", "")
    return header, delta.to_pyarrow_table(columns=["image_id", "line"]).to_pylist()
