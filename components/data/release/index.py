"""A dataset's index: each split's records as Parquet rows, derived from the release files.

    DATASET/index/manifest.json                                 what the index holds, written last
    DATASET/index/build-<time>-<id>/<split>/part-00000.parquet  rows (image_id, record) in split order

The release format (``ref_captions.json`` plus the split files) stays the interchange format; the
index is derived from it, so that no flow parses a 1.5 GB JSON file on its driver: training hands
Ray Data row ranges (``DatasetIndex.row_ranges``) that the workers read (``read_rows``,
``components.data.pipeline.stream``), and the driver reads only rows it keeps (a validation subset, an
evaluated split) and the manifest. A row's record
is the release record as compact JSON ("" for an id the captions file lacks: counted as
``missing_record`` downstream); an id listed twice in a split is a row once (the manifest counts it).

The manifest holds the dataset version (``content_version``, computed while building), the size and
content digest of every source file (an edit that keeps the size and puts the modification time back
is still an edit), and each split's files with their sizes and row counts.
``ensure_index`` rebuilds the index when it is missing, stale (a source changed) or corrupt (an
unreadable manifest; a file missing, truncated, or without a readable footer holding its rows),
saying which. Building streams the captions file (``components.data.release.jsonstream``) through position
buckets on local scratch disk: its memory grows with the split files' ids, not with the records.
Builds go to a new folder and the manifest is switched last, so a reader sees the old index or the
new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from components import storage
from components.data.record.tokenizer import VOCABULARY_FILE
from components.data.release.format import CAPTIONS_FILE, SPLIT_FILES, read_names
from components.data.release.jsonstream import iter_object_members
from components.errors import DatasetFormatError

log = logging.getLogger(__name__)

INDEX_DIR = "index"
MANIFEST_FILE = "manifest.json"
INDEX_FORMAT = 2  # 2: sources by content digest, not modification time
ROWS_PER_FILE = 65_536  # a few dozen files for CapOnImage2M's train split
ROWS_PER_GROUP = 4_096  # a validation subset reads the first row groups only
BUCKET_POSITIONS = 100_000  # split positions per scratch bucket: the records one bucket holds in memory
KEPT_DUPLICATES = 10_000  # repeated ids named in the manifest (all are counted)
ALL_RECORDS = "all"  # the split of a folder without split files: every record
KEPT_BUILDS = 2  # this build and the one before, which a job started earlier may still be reading
SCHEMA = pa.schema([("image_id", pa.string()), ("record", pa.string())])


class IndexProblem(DatasetFormatError):
    """The index cannot be used as it is: ``kind`` is ``missing``, ``stale`` or ``corrupt``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SplitIndex:
    rows: int  # images, each id once
    files: tuple[tuple[str, int, int], ...]  # (file name, bytes, rows) in split order
    missing_records: int  # ids with no record in the captions file
    duplicate_count: int  # listings of an id already listed
    duplicates: tuple[str, ...]  # those ids, the first KEPT_DUPLICATES

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SplitIndex:
        return cls(
            int(value["rows"]),
            tuple((str(name), int(size), int(rows)) for name, size, rows in value["files"]),
            int(value["missing_records"]),
            int(value["duplicate_count"]),
            tuple(value["duplicates"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "files": [list(f) for f in self.files],
            "missing_records": self.missing_records,
            "duplicate_count": self.duplicate_count,
            "duplicates": list(self.duplicates),
        }


@dataclass(frozen=True)
class DatasetIndex:
    """A dataset's index as its manifest describes it."""

    dataset: str
    version: str  # content_version of the splits, records and vocabulary
    build: str  # the folder under index/ holding the files
    sources: dict[str, tuple[int, str]]  # release file -> (bytes, content digest)
    splits: dict[str, SplitIndex]
    unsplit: int  # records in no split

    def split(self, name: str) -> SplitIndex:
        if name not in self.splits:
            raise DatasetFormatError(f"{self.dataset} has no {SPLIT_FILES.get(name, name)} for the '{name}' split")
        return self.splits[name]

    def files(self, split: str) -> list[str]:
        """The split's Parquet files, in split order."""
        folder = storage.join(self.dataset, INDEX_DIR, self.build, split)
        return [storage.join(folder, name) for name, _, _ in self.split(split).files]

    def row_ranges(self, split: str, parts: int) -> list[dict[str, Any]]:
        """The split as about ``parts`` ranges ``{"uri", "start", "stop"}`` of rows, in split order, none
        across two files: what the workers read (``read_rows``), each range a block of Ray Data."""
        size = max(1, -(-self.split(split).rows // max(1, parts)))
        ranges = []
        for uri, (_, _, rows) in zip(self.files(split), self.split(split).files, strict=True):
            ranges += [{"uri": uri, "start": s, "stop": min(rows, s + size)} for s in range(0, rows, size)]
        return ranges

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "version": self.version,
            "build": self.build,
            "sources": {name: list(value) for name, value in self.sources.items()},
            "splits": {name: split.to_json() for name, split in self.splits.items()},
            "unsplit": self.unsplit,
        }


# -- the version's hash ------------------------------------------------------------------------------
def record_text(value: Any) -> str:
    """A record as the index and the version hash hold it: compact JSON, keys sorted."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def content_version(captions: dict[str, Any], splits: dict[str, list[str]], vocabulary: bytes = b"") -> str:
    """A short hash of what a dataset gives a model: each split's ids in order with their records, and
    the vocabulary. Records in no split do not count, nor does how the JSON was laid out. (``build_index``
    computes the same hash while streaming.)"""
    digest = hashlib.sha256(vocabulary)
    for split in sorted(splits):
        digest.update(f"\n#{split}\n".encode())
        for image_id in splits[split]:
            digest.update(utf8(f"{image_id}\t{record_text(captions.get(image_id))}\n"))
    return digest.hexdigest()[:12]


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, an unpaired surrogate (which JSON and NumPy can hold, UTF-8 cannot) written as
    its escape ``\\udXXX``: such an id is indexed, then refused as ``unsafe_id`` by the record check
    (a backslash is in no safe id), instead of stopping the index build."""
    return text.encode("utf-8", "backslashreplace")


def storable(text: str) -> str:
    """``text`` as the index stores it (``utf8``)."""
    return utf8(text).decode("utf-8")


def read_split_ids(dataset: str) -> dict[str, list[str]]:
    """The ids of every split that has a names file."""
    splits = {}
    for split, name in SPLIT_FILES.items():
        uri = storage.join(dataset, name)
        if storage.exists(uri):
            with io.BytesIO(storage.read_bytes(uri)) as handle:
                splits[split] = read_names(handle)
    return splits


def source_files(dataset: str) -> dict[str, tuple[int, str]]:
    """(bytes, content digest) of each release file the index derives from: an edit is seen whatever
    it does to the file's size and modification time."""
    found = {}
    for name in (CAPTIONS_FILE, *SPLIT_FILES.values(), VOCABULARY_FILE):
        location = storage.join(dataset, name)
        stat = storage.stat(location)
        if stat is not None:
            found[name] = (stat[0], storage.content_digest(location))
    return found


# -- building ----------------------------------------------------------------------------------------
class _Positions:
    """Where each id sits in the split files: its first listing per split, and the repeats."""

    def __init__(self, splits: dict[str, list[str]]):
        self.names = sorted(splits)
        self.ids = {name: splits[name] for name in self.names}
        self.first: dict[str, int] = {}  # id -> its first listing's code (split number, position)
        self.more: dict[str, list[int]] = {}  # ids listed first in more than one split
        self.repeated: dict[str, list[int]] = {}  # split number -> positions of later listings
        for number, name in enumerate(self.names):
            seen: set[str] = set()
            for position, image_id in enumerate(self.ids[name]):
                if image_id in seen:
                    self.repeated.setdefault(name, []).append(position)
                    continue
                seen.add(image_id)
                code = self.code(number, position)
                if image_id not in self.first:
                    self.first[image_id] = code
                else:
                    self.more.setdefault(image_id, []).append(code)

    @staticmethod
    def code(number: int, position: int) -> int:
        return (number << 40) | position

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


class _PartWriter:
    """A split's rows into Parquet files of ``ROWS_PER_FILE`` rows, row groups of ``ROWS_PER_GROUP``."""

    def __init__(self, folder: str):
        self.folder = folder
        self.filesystem, self.path = storage.resolve(folder)
        self.filesystem.create_dir(self.path, recursive=True)
        self.files: list[tuple[str, int, int]] = []
        self.ids: list[str] = []
        self.records: list[str] = []

    def add(self, image_id: str, record: str) -> None:
        self.ids.append(image_id)
        self.records.append(record)
        if len(self.ids) == ROWS_PER_FILE:
            self.flush()

    def flush(self) -> None:
        if not self.ids and self.files:
            return
        name = f"part-{len(self.files):05d}.parquet"
        table = pa.table({"image_id": self.ids, "record": self.records}, schema=SCHEMA)
        path = f"{self.path}/{name}"
        pq.write_table(
            table,
            path,
            filesystem=self.filesystem,
            row_group_size=ROWS_PER_GROUP,
            compression="zstd",
            write_page_checksum=True,  # a garbled page fails its read instead of passing as other records
        )
        self.files.append((name, self.filesystem.get_file_info(path).size, len(self.ids)))
        self.ids, self.records = [], []


def _captions_members(dataset: str) -> Iterator[tuple[str, Any]]:
    uri = storage.join(dataset, CAPTIONS_FILE)
    filesystem, path = storage.resolve(uri)
    with filesystem.open_input_stream(path) as stream:
        yield from iter_object_members(stream, name=uri)


def _stream_records(dataset: str, positions: _Positions, buckets: _Buckets) -> tuple[int, dict[str, str]]:
    """Every member of the captions file into its buckets: (records in no split, the records of ids
    listed more than once in a split)."""
    repeated, kept, unsplit = positions.repeated_ids(), {}, 0
    for image_id, value in _captions_members(dataset):
        codes = positions.codes(image_id)
        if not codes:
            unsplit += 1
            continue
        text = record_text(value)
        for code in codes:
            buckets.add(code, text)
        if image_id in repeated:
            kept[image_id] = text
    return unsplit, kept


def _write_split(
    name: str, number: int, positions: _Positions, buckets: _Buckets, repeats: dict[str, str], folder: str, digest
) -> SplitIndex:
    """One split's files, in split order, feeding the version hash as ``content_version`` does."""
    ids, writer = positions.ids[name], _PartWriter(storage.join(folder, name))
    repeated = set(positions.repeated.get(name, []))
    duplicates, missing = [], 0
    for bucket in range((len(ids) + BUCKET_POSITIONS - 1) // BUCKET_POSITIONS):
        records = buckets.records(number, bucket)
        for position in range(bucket * BUCKET_POSITIONS, min(len(ids), (bucket + 1) * BUCKET_POSITIONS)):
            image_id = ids[position]
            text = repeats.get(image_id) if position in repeated else records.get(position)
            digest.update(utf8(f"{image_id}\t{'null' if text is None else text}\n"))
            if position in repeated:
                duplicates.append(image_id)
                continue
            missing += text is None
            writer.add(storable(image_id), text or "")
    writer.flush()
    kept = tuple(duplicates[:KEPT_DUPLICATES])
    return SplitIndex(len(ids) - len(duplicates), tuple(writer.files), missing, len(duplicates), kept)


def build_index(dataset: str) -> DatasetIndex:
    """Derive the index from the release files (see the module's docstring) and make it current."""
    sources = source_files(dataset)  # before reading: a write during the build leaves it stale
    if CAPTIONS_FILE not in sources:
        raise DatasetFormatError(f"{dataset} is not a dataset folder: {CAPTIONS_FILE} is missing")
    vocabulary_uri = storage.join(dataset, VOCABULARY_FILE)
    digest = hashlib.sha256(storage.read_bytes(vocabulary_uri) if VOCABULARY_FILE in sources else b"")
    split_ids = read_split_ids(dataset)
    if not split_ids:  # no split files: every record, in the file's order, as the split "all"
        split_ids = {ALL_RECORDS: [image_id for image_id, _ in _captions_members(dataset)]}
    positions = _Positions(split_ids)
    build = f"build-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"  # names sort by age
    folder = storage.join(dataset, INDEX_DIR, build)
    with tempfile.TemporaryDirectory(prefix="caponimage-index-") as scratch:
        buckets = _Buckets(scratch)
        try:
            unsplit, repeats = _stream_records(dataset, positions, buckets)
        finally:
            buckets.close()
        splits = {}
        for number, name in enumerate(positions.names):
            hashed = digest if name != ALL_RECORDS else hashlib.sha256()  # no split files: the version has none
            hashed.update(f"\n#{name}\n".encode())
            splits[name] = _write_split(name, number, positions, buckets, repeats, folder, hashed)
    index = DatasetIndex(dataset, digest.hexdigest()[:12], build, sources, splits, unsplit)
    storage.write_bytes(manifest_uri(dataset), json.dumps(index.to_json(), indent=1).encode())  # the switch
    _forget_old_builds(dataset, build)
    log.info("indexed %s: version %s, %s", dataset, index.version, _sizes(index))
    return index


def _forget_old_builds(dataset: str, current: str) -> None:
    builds = [e for e in storage.list_folder(storage.join(dataset, INDEX_DIR)) if e.is_folder and e.name != current]
    for entry in builds[: max(0, len(builds) - (KEPT_BUILDS - 1))]:
        storage.delete(storage.join(dataset, INDEX_DIR, entry.name))


def _sizes(index: DatasetIndex) -> str:
    return ", ".join(f"{name} {split.rows} images" for name, split in index.splits.items()) or "no splits"


# -- reading -----------------------------------------------------------------------------------------
def manifest_uri(dataset: str) -> str:
    return storage.join(dataset, INDEX_DIR, MANIFEST_FILE)


def load_index(dataset: str, *, pages: bool = False) -> DatasetIndex:
    """The dataset's index as it is, or ``IndexProblem`` saying why it cannot be used. Every file's
    size and footer are checked; with ``pages`` every page is read and its checksum verified too (as
    ``index_dataset.py --check`` does; readers verify the pages they read)."""
    uri = manifest_uri(dataset)
    if not storage.exists(uri):
        raise IndexProblem("missing", f"{dataset} has no index ({uri})")
    try:
        value = json.loads(storage.read_bytes(uri))
        if value.get("format") != INDEX_FORMAT:
            raise ValueError(f"format {value.get('format')!r}, expected {INDEX_FORMAT}")
        index = DatasetIndex(
            dataset,
            str(value["version"]),
            str(value["build"]),
            {str(k): (int(v[0]), str(v[1])) for k, v in value["sources"].items()},
            {str(k): SplitIndex.from_json(v) for k, v in value["splits"].items()},
            int(value["unsplit"]),
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise IndexProblem("corrupt", f"{uri} is not a readable index manifest ({err})") from err
    changed = sorted(set(source_files(dataset).items()) ^ set(index.sources.items()))
    if changed:
        names = sorted({name for name, _ in changed})
        raise IndexProblem("stale", f"the index of {dataset} is older than {', '.join(names)}")
    _check_files(index)
    if pages:
        _check_pages(index)
    return index


def _check_pages(index: DatasetIndex) -> None:
    """Every page of every index file read, its checksum verified."""
    for name in index.splits:
        for uri in index.files(name):
            try:
                _parquet_file(uri).read()
            except (pa.ArrowException, OSError) as err:
                raise IndexProblem("corrupt", f"index file {uri} cannot be read ({err})") from err


def _check_files(index: DatasetIndex) -> None:
    """Every file the manifest lists is there, whole: its size, and a footer saying its rows."""
    for name, split in index.splits.items():
        folder = storage.join(index.dataset, INDEX_DIR, index.build, name)
        present = {e.name: e.size for e in storage.list_folder(folder)}
        for file_name, size, rows in split.files:
            uri = storage.join(folder, file_name)
            if present.get(file_name) != size:
                found = "missing" if file_name not in present else f"{present[file_name]} bytes, not {size}"
                raise IndexProblem("corrupt", f"index file {uri} is {found}")
            try:
                found_rows = _parquet_file(uri).metadata.num_rows
            except (pa.ArrowException, OSError) as err:
                raise IndexProblem("corrupt", f"index file {uri} is not readable Parquet ({err})") from err
            if found_rows != rows:
                raise IndexProblem("corrupt", f"index file {uri} holds {found_rows} rows, its manifest says {rows}")


def _parquet_file(uri: str) -> pq.ParquetFile:
    filesystem, path = storage.resolve(uri)
    return pq.ParquetFile(filesystem.open_input_file(path), page_checksum_verification=True)


def ensure_index(dataset: str) -> DatasetIndex:
    """The dataset's index, built first when it is missing, stale or corrupt (the reason logged)."""
    try:
        return load_index(dataset)
    except IndexProblem as problem:
        if problem.kind == "corrupt":
            log.warning("%s: rebuilding it", problem)
        elif problem.kind == "stale":
            log.info("%s: rebuilding it", problem)
    return build_index(dataset)


def read_rows(uri: str, start: int, stop: int) -> pa.Table:
    """Rows ``start:stop`` of one index file, reading only the row groups that hold them."""
    parquet = _parquet_file(uri)
    groups, offset, skip = [], 0, 0
    for group in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        if offset < stop and offset + rows > start:
            skip = skip if groups else start - offset
            groups.append(group)
        offset += rows
    with _unreadable_as_corrupt(uri):
        table = parquet.read_row_groups(groups) if groups else SCHEMA.empty_table()
    return table.slice(skip, stop - start)


@contextmanager
def _unreadable_as_corrupt(uri: str) -> Iterator[None]:
    """A page that fails its checksum (or does not decode) as ``IndexProblem``, naming the file."""
    try:
        yield
    except (pa.ArrowException, OSError) as err:
        raise IndexProblem("corrupt", f"index file {uri} cannot be read ({err}): rebuild the index") from err


def iter_index_rows(index: DatasetIndex, split: str, limit: int | None = None) -> Iterator[dict[str, str]]:
    """``{"image_id", "record"}`` of a split in order, the first ``limit`` when given, read a row group
    at a time."""
    left = index.split(split).rows if limit is None else min(limit, index.split(split).rows)
    for uri in index.files(split):
        with _unreadable_as_corrupt(uri):
            batches = list(_first_batches(_parquet_file(uri), left))
        for batch in batches:
            yield from batch.slice(0, left).to_pylist()
            left -= min(left, batch.num_rows)
        if not left:
            return


def _first_batches(parquet: pq.ParquetFile, rows: int) -> Iterator[pa.RecordBatch]:
    """A file's row groups as batches, until ``rows`` rows are read."""
    for batch in parquet.iter_batches(batch_size=ROWS_PER_GROUP):
        yield batch
        rows -= batch.num_rows
        if rows <= 0:
            return


def read_index(dataset: str, split: str, limit: int | None = None) -> list[dict[str, str]]:
    """``[{"image_id", "record"}]`` of a split on the driver, the record as JSON text ("" for an id the
    captions file lacks). For the rows a caller keeps anyway (a validation subset, an evaluated split);
    training reads its split on the workers."""
    return index_head(ensure_index(dataset), split, limit)


def index_head(index: DatasetIndex, split: str, limit: int | None = None) -> list[dict[str, str]]:
    """``read_index`` from an index already loaded."""
    try:
        return list(iter_index_rows(index, split, limit))
    except IndexProblem as problem:  # a garbled page behind an intact footer: found only on reading
        log.warning("%s", problem)
        return list(iter_index_rows(build_index(index.dataset), split, limit))


def dataset_version(dataset: str) -> str:
    """The version of a dataset folder: what scores are comparable on and what runs record having read."""
    return ensure_index(dataset).version
