"""The Parquet index: written from the release files, read back in split order, versioned with them,
rebuilt when stale or corrupt; and the streaming reader of the captions file under it."""

import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from components.data.pipeline.stream import read_ranges
from components.data.release import index as index_module
from components.data.release.format import CAPTIONS_FILE, write_names
from components.data.release.index import (
    INDEX_DIR,
    IndexProblem,
    build_index,
    content_version,
    dataset_version,
    ensure_index,
    load_index,
    read_index,
    read_rows,
)
from components.data.release.jsonstream import iter_object_members
from components.errors import DatasetFormatError


def record(n: int) -> dict:
    return {
        "info": f"品牌{n} 保温杯",
        "all_locs": ["0.1_0.1_0.4_0.3"],
        "ocr_locs": ["0.1_0.1_0.4_0.3"],
        "ocr_txts": [f"保温{n}小时"],
        "ocr_colors": [[n % 255, 1, 2]],
    }


def write_folder(root, captions: dict, splits: dict[str, list[str]], vocabulary: bytes | None = b'{"<pad>": 0}'):
    root.mkdir(parents=True, exist_ok=True)
    (root / CAPTIONS_FILE).write_text(json.dumps(captions, ensure_ascii=False, indent=1), "utf-8")
    names = {"train": "trn_names.npy", "val": "val_names.npy", "test": "tst_names.npy"}
    for split, ids in splits.items():
        write_names(root / names[split], ids)
    if vocabulary is not None:
        (root / "word2int.json").write_bytes(vocabulary)
    return str(root)


@pytest.fixture
def folder(tmp_path):
    """12 records: train lists 8 (one id twice, one with no record), val 3, one record in no split."""
    captions = {f"i{n:02d}": record(n) for n in range(12)}
    splits = {
        "train": ["i03", "i00", "i01", "i02", "i01", "absent", "i04", "i05", "i06"],
        "val": ["i09", "i08", "i07"],
    }
    return write_folder(tmp_path / "ds", captions, splits), captions, splits


# -- the streaming reader ------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_streamed_members_equal_json_loads_at_any_chunk_boundary(chunk):
    value = {"a": {"x": [1, 2.5e-3, None, True, "保温杯\u2028\\n"]}, "数字": 1234567, "b": -0.5, "c": "", "d": []}
    text = json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")  # multi-byte characters split too
    assert dict(iter_object_members(io.BytesIO(text), chunk_bytes=chunk)) == value


def test_a_repeated_key_yields_both_members_in_file_order():
    text = b'{"a": 1, "b": 2, "a": 3}'
    assert list(iter_object_members(io.BytesIO(text), chunk_bytes=2)) == [("a", 1), ("b", 2), ("a", 3)]


@pytest.mark.parametrize(
    "text, message",
    [
        (b"[1, 2]", "expected an object keyed by image id"),
        (b'{"a": {"b": 1}', "expected ',' or '}'"),
        (b'{"a": {"b": ', "not valid JSON"),
        (b'{"a": 1} {"b": 2}', "more data after the object"),
        (b'{"a" 1}', "expected ':'"),
        (b'{"a": 1, 2: 3}', "expected a string key, found 2"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
    ],
)
def test_streamed_reader_names_the_file_and_the_fault(text, message):
    with pytest.raises(DatasetFormatError, match=message) as caught:
        list(iter_object_members(io.BytesIO(text), name="ref_captions.json", chunk_bytes=4))
    assert "ref_captions.json" in str(caught.value)


# -- writing and reading -------------------------------------------------------------------------------
def test_round_trip_keeps_split_order_counts_what_it_drops_and_hashes_as_before(folder):
    root, captions, splits = folder
    index = build_index(root)
    rows = read_index(root, "train")
    assert [r["image_id"] for r in rows] == ["i03", "i00", "i01", "i02", "absent", "i04", "i05", "i06"]
    assert [json.loads(r["record"]) if r["record"] else None for r in rows] == [
        captions.get(r["image_id"]) for r in rows
    ]
    assert rows[4]["record"] == ""  # kept, to be counted as missing_record downstream
    train = index.splits["train"]
    assert (train.rows, train.missing_records, train.duplicate_count, train.duplicates) == (8, 1, 1, ("i01",))
    assert index.unsplit == 2  # i10, i11
    assert [r["image_id"] for r in read_index(root, "val", limit=2)] == ["i09", "i08"]
    # the version hash is the in-memory one (content_version) of the same files
    assert index.version == content_version(captions, splits, b'{"<pad>": 0}') == dataset_version(root)


def test_many_files_row_groups_and_buckets_read_back_the_same(folder, monkeypatch):
    root, _, _ = folder
    whole = read_index(root, "train")
    monkeypatch.setattr(index_module, "ROWS_PER_FILE", 3)
    monkeypatch.setattr(index_module, "ROWS_PER_GROUP", 2)
    monkeypatch.setattr(index_module, "BUCKET_POSITIONS", 2)
    index = build_index(root)
    assert len(index.splits["train"].files) == 3 and len(index.files("train")) == 3
    assert read_index(root, "train") == whole
    assert read_index(root, "train", limit=5) == whole[:5]
    assert index.version == build_index(root).version
    # what the workers read: ranges within one file each, across row groups, covering the split in order
    for parts in (1, 3, 5, 100):
        ranges = index.row_ranges("train", parts)
        assert all(0 <= r["start"] < r["stop"] <= 3 for r in ranges)
        assert [row for r in ranges for row in read_rows(r["uri"], r["start"], r["stop"]).to_pylist()] == whole
    as_batch = {key: np.array([r[key] for r in index.row_ranges("train", 4)]) for key in ("uri", "start", "stop")}
    assert read_ranges(as_batch).to_pylist() == whole  # the pipeline's map over a block of ranges


def test_a_folder_without_split_files_indexes_every_record_as_all(tmp_path):
    captions = {"b": record(1), "a": record(2)}
    root = write_folder(tmp_path / "ds", captions, {}, vocabulary=None)
    index = build_index(root)
    assert [r["image_id"] for r in read_index(root, "all")] == ["b", "a"]  # the file's order
    assert index.version == content_version(captions, {}) and index.unsplit == 0


def test_a_folder_without_captions_is_not_a_dataset(tmp_path):
    with pytest.raises(DatasetFormatError, match="ref_captions.json is missing"):
        ensure_index(str(tmp_path))


def test_an_unknown_split_is_named(folder):
    root, _, _ = folder
    with pytest.raises(DatasetFormatError, match="no tst_names.npy for the 'test' split"):
        read_index(root, "test")


# -- staleness and corruption --------------------------------------------------------------------------
def test_a_changed_source_makes_the_index_stale_and_the_next_read_rebuilds_it(folder, caplog):
    root, captions, splits = folder
    before = build_index(root)
    captions["i09"] = {**captions["i09"], "ocr_txts": ["新的文字"]}
    path = os.path.join(root, CAPTIONS_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(captions, handle, ensure_ascii=False)
    with pytest.raises(IndexProblem, match="older than ref_captions.json") as caught:
        load_index(root)
    assert caught.value.kind == "stale"
    with caplog.at_level(logging.INFO, logger="components.data.release.index"):
        rows = read_index(root, "val", limit=1)
    assert "rebuilding it" in caplog.text
    assert json.loads(rows[0]["record"])["ocr_txts"] == ["新的文字"]
    assert dataset_version(root) == content_version(captions, splits, b'{"<pad>": 0}') != before.version


def test_a_changed_split_file_or_vocabulary_is_stale_too(folder):
    root, _, splits = folder
    build_index(root)
    write_names(os.path.join(root, "val_names.npy"), splits["val"][:2])
    with pytest.raises(IndexProblem, match="val_names.npy"):
        load_index(root)
    assert [r["image_id"] for r in read_index(root, "val")] == ["i09", "i08"]
    os.remove(os.path.join(root, "word2int.json"))
    with pytest.raises(IndexProblem, match="word2int.json"):
        load_index(root)


def test_an_unreadable_manifest_is_a_clear_error_then_rebuilt(folder, caplog):
    root, _, _ = folder
    good = build_index(root)
    manifest = os.path.join(root, INDEX_DIR, "manifest.json")
    with open(manifest, "w") as handle:
        handle.write('{"format": 1, "version": ')
    with pytest.raises(IndexProblem, match="not a readable index manifest") as caught:
        load_index(root)
    assert caught.value.kind == "corrupt"
    with caplog.at_level(logging.WARNING, logger="components.data.release.index"):
        assert dataset_version(root) == good.version
    assert "not a readable index manifest" in caplog.text and "rebuilding it" in caplog.text
    assert load_index(root).version == good.version


def test_a_truncated_or_missing_index_file_is_named_then_rebuilt(folder, caplog):
    root, _, _ = folder
    index = build_index(root)
    part = index.files("train")[0]
    with open(part, "r+b") as handle:
        handle.truncate(os.path.getsize(part) // 2)
    with pytest.raises(IndexProblem, match=f"index file {part} is .* bytes, not"):
        load_index(root)
    with caplog.at_level(logging.WARNING, logger="components.data.release.index"):
        assert len(read_index(root, "train")) == 8
    assert "rebuilding it" in caplog.text
    os.remove(load_index(root).files("val")[0])
    with pytest.raises(IndexProblem, match="is missing"):
        load_index(root)
    assert len(read_index(root, "val")) == 3


def test_a_file_of_the_right_size_that_is_not_parquet_is_corrupt(folder):
    root, _, _ = folder
    part = build_index(root).files("val")[0]
    size = os.path.getsize(part)
    with open(part, "wb") as handle:
        handle.write(b"x" * size)
    with pytest.raises(IndexProblem, match="not readable Parquet"):
        load_index(root)


def test_older_builds_are_removed_but_the_one_before_is_kept(folder):
    root, _, _ = folder
    builds = [build_index(root).build for _ in range(4)]
    kept = sorted(e for e in os.listdir(os.path.join(root, INDEX_DIR)) if e.startswith("build-"))
    assert kept == builds[-2:]


def test_the_index_flow_builds_then_checks_and_names_a_stale_source(folder, capsys):
    from helpers import load_flow

    from components.cli import run

    root, _, _ = folder
    flow = load_flow("index_dataset").main
    assert run(flow, [root, "--check"]) == 3  # none yet
    assert "has no index" in capsys.readouterr().err
    assert run(flow, [root]) == 0
    out = capsys.readouterr().out
    assert "train          8 images in 1 files; 1 listed twice, 1 without a record" in out
    assert run(flow, [root, "--check"]) == 0
    os.utime(os.path.join(root, "trn_names.npy"), ns=(1, 1))
    assert run(flow, [root, "--check"]) == 0  # touched, not changed: still current
    captions = Path(root, "ref_captions.json")
    before, stat = captions.read_bytes(), captions.stat()
    edited = before.replace("保温3小时".encode(), "保温8小时".encode())  # the same size
    assert len(edited) == len(before) and edited != before
    captions.write_bytes(edited)
    os.utime(captions, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the modification time put back
    assert run(flow, [root, "--check"]) == 3
    assert "older than ref_captions.json" in capsys.readouterr().err
    assert json.loads(read_index(root, "train")[0]["record"])["ocr_txts"] == ["保温8小时"]  # readers rebuild


def test_a_garbled_page_behind_an_intact_footer_fails_its_checksum_then_is_rebuilt(folder, caplog):
    root, _, _ = folder
    index = build_index(root)
    whole = read_index(root, "train")
    part = index.files("train")[0]
    with open(part, "rb") as handle:
        data = bytearray(handle.read())
    chunk = pq.ParquetFile(part).metadata.row_group(0).column(1)  # the records
    data[(chunk.dictionary_page_offset or chunk.data_page_offset) + chunk.total_compressed_size - 1] ^= 0xFF
    with open(part, "wb") as handle:
        handle.write(bytes(data))
    assert load_index(root).build == index.build  # the footer still reads
    with pytest.raises(IndexProblem, match=f"index file {part} cannot be read .*CRC"):
        load_index(root, pages=True)  # what index_dataset.py --check reads
    with pytest.raises(IndexProblem, match=f"index file {part} cannot be read .*CRC"):
        read_rows(part, 0, 8)  # what a worker reads: an error naming the file, not other records
    with caplog.at_level(logging.WARNING, logger="components.data.release.index"):
        assert read_index(root, "train") == whole
    assert "cannot be read" in caplog.text and load_index(root).build != index.build


def test_ids_and_captions_no_utf8_can_hold_are_indexed_escaped_then_refused_by_the_record_check(tmp_path):
    """An unpaired surrogate (JSON's "\\ud800", or in a names file) used to stop the index build
    writing the split; it is stored escaped, hashed as content_version hashes it, and the record
    check refuses it as unsafe_id (a caption holding one as bad_caption); the other records are kept."""
    from components.data.record.rejection import RecordRejected
    from components.data.release.format import parse_record_value

    captions = {"ok": record(1), "x\ud800": record(2), "nl\n": record(3), "cap": {**record(4), "ocr_txts": ["a\udc00"]}}
    splits = {"train": ["ok", "x\ud800", "nl\n", "cap"]}
    root = write_folder(tmp_path / "ds", {}, splits)
    (tmp_path / "ds" / CAPTIONS_FILE).write_text(json.dumps(captions), "utf-8")  # as JSON escapes
    index = build_index(root)
    assert index.version == content_version(captions, splits, b'{"<pad>": 0}')
    outcomes = {}
    for row in read_index(root, "train"):
        try:
            parse_record_value(row["image_id"], json.loads(row["record"]), None)
            outcomes[row["image_id"]] = "ok"
        except RecordRejected as rejected:
            outcomes[row["image_id"]] = rejected.reason
    assert outcomes == {"ok": "ok", "x\\ud800": "unsafe_id", "nl\n": "unsafe_id", "cap": "bad_caption"}
