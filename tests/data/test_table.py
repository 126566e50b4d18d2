"""The dataset's table: the release files imported (streamed) and exported back record for record,
appends as commits on top of a version (concurrent ones refused, a crash leaving the version before),
versions read back by number or tag, the earlier layout migrated; and the streaming reader of the
captions file under the import."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from components.data.release import table as table_module
from components.data.release.format import CAPTIONS_FILE, write_names
from components.data.release.jsonstream import iter_object_members
from components.data.release.migration import migrate
from components.data.release.table import (
    ConcurrentCommit,
    DatasetTable,
    append_rows,
    ensure_table,
    export_release,
    head_rows,
    history,
    import_release,
    open_table,
    partition_ledger,
    read_blocks,
    read_split,
    record_text,
    resolve_version,
    version_vocabulary,
)
from components.errors import DatasetFormatError
from tests.helpers import load_flow


def record(n: int) -> dict:
    return {
        "info": f"品牌{n} 保温杯",
        "all_locs": ["0.1_0.1_0.4_0.3"],
        "ocr_locs": ["0.1_0.1_0.4_0.3"],
        "ocr_txts": [f"保温{n}小时"],
        "ocr_colors": [[n % 255, 1, 2]],
    }


NAMES = {"train": "trn_names.npy", "val": "val_names.npy", "test": "tst_names.npy"}
VOCABULARY = '{"<unk>": 0, "<pad>": 1, "<sos>": 2, "<eos>": 3, "<mask>": 4, "保": 5}'.encode()


def write_folder(root, captions: dict, splits: dict[str, list[str]], vocabulary: bytes | None = VOCABULARY):
    root.mkdir(parents=True, exist_ok=True)
    (root / CAPTIONS_FILE).write_text(json.dumps(captions, ensure_ascii=False, indent=1), "utf-8")
    for split, ids in splits.items():
        write_names(root / NAMES[split], ids)
    if vocabulary is not None:
        (root / "word2int.json").write_bytes(vocabulary)
    return str(root)


@pytest.fixture
def folder(tmp_path):
    """12 records: train lists 9 (one id twice, one with no record), val 3, two records in no split."""
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


# -- importing and reading ------------------------------------------------------------------------------
def test_import_keeps_split_order_and_counts_what_it_drops(folder):
    root, captions, _ = folder
    table = import_release(root)
    rows = read_split(root, "train")
    assert [r["image_id"] for r in rows] == ["i03", "i00", "i01", "i02", "absent", "i04", "i05", "i06"]
    assert [json.loads(r["record"]) if r["record"] else None for r in rows] == [
        captions.get(r["image_id"]) for r in rows
    ]
    assert rows[4]["record"] == ""  # kept, to be counted as missing_record downstream
    train = table.splits["train"]
    assert (train.rows, train.missing_records, train.duplicate_count, train.duplicates) == (8, 1, 1, ("i01",))
    assert table.unsplit == 2 and table.version == "0" and list(table.splits) == ["train", "val"]
    assert [r["image_id"] for r in read_split(root, "val", limit=2)] == ["i09", "i08"]
    assert version_vocabulary(table).word2int["保"] == 5


def test_many_batches_row_groups_and_buckets_read_back_the_same(folder, tmp_path, monkeypatch):
    root, _, _ = folder
    whole = head_rows(import_release(root), "train")
    monkeypatch.setattr(table_module, "ROWS_PER_BATCH", 3)
    monkeypatch.setattr(table_module, "ROWS_PER_GROUP", 2)
    monkeypatch.setattr(table_module, "BUCKET_POSITIONS", 2)
    again = import_release(str(tmp_path / "again"), root)
    assert head_rows(again, "train") == whole
    assert head_rows(again, "train", limit=5) == whole[:5]


def test_a_folder_without_split_files_imports_every_record_as_all(tmp_path):
    root = write_folder(tmp_path / "ds", {"b": record(1), "a": record(2)}, {}, vocabulary=None)
    table = ensure_table(root)  # a folder of release files without a table is imported on first read
    assert [r["image_id"] for r in head_rows(table, "all")] == ["b", "a"]  # the file's order
    assert table.unsplit == 0 and version_vocabulary(table) is None


def test_a_folder_without_captions_is_not_a_dataset(tmp_path):
    with pytest.raises(DatasetFormatError, match="no table and no ref_captions.json"):
        ensure_table(str(tmp_path))


def test_an_unknown_split_is_named(folder):
    root, _, _ = folder
    with pytest.raises(DatasetFormatError, match="no tst_names.npy for the 'test' split"):
        read_split(root, "test")


def test_importing_over_a_table_needs_replace_and_makes_a_new_version(folder):
    root, _, _ = folder
    import_release(root)
    with pytest.raises(DatasetFormatError, match="has a table already"):
        import_release(root)
    assert import_release(root, replace=True).version == "1"


def test_ids_and_captions_no_utf8_can_hold_are_stored_escaped_then_refused_by_the_record_check(tmp_path):
    """An unpaired surrogate (JSON's "\\ud800", or in a names file) is stored escaped, and the record
    check refuses it as unsafe_id (a caption holding one as bad_caption); the other records are kept."""
    from components.data.record.rejection import RecordRejected
    from components.data.release.format import parse_record_value

    captions = {"ok": record(1), "x\ud800": record(2), "nl\n": record(3), "cap": {**record(4), "ocr_txts": ["a\udc00"]}}
    root = write_folder(tmp_path / "ds", {}, {"train": ["ok", "x\ud800", "nl\n", "cap"]})
    (tmp_path / "ds" / CAPTIONS_FILE).write_text(json.dumps(captions), "utf-8")  # as JSON escapes
    outcomes = {}
    for row in head_rows(import_release(root), "train"):
        try:
            parse_record_value(row["image_id"], json.loads(row["record"]), None)
            outcomes[row["image_id"]] = "ok"
        except RecordRejected as rejected:
            outcomes[row["image_id"]] = rejected.reason
    assert outcomes == {"ok": "ok", "x\\ud800": "unsafe_id", "nl\n": "unsafe_id", "cap": "bad_caption"}


# -- exporting ------------------------------------------------------------------------------------------
def test_an_export_gives_back_the_release_files_byte_for_byte(tiny_dataset, tmp_path):
    """The release writer's folder: ref_captions.json, the split files and the vocabulary come back
    byte for byte (records in split order, as the writer wrote them)."""
    source = Path(tiny_dataset[0])
    table = import_release(str(tmp_path / "ds"), str(source))
    export_release(table, str(tmp_path / "out"))
    for name in (CAPTIONS_FILE, *NAMES.values(), "word2int.json", "int2word.json"):
        assert (tmp_path / "out" / name).read_bytes() == (source / name).read_bytes(), name


def test_an_export_keeps_each_record_as_imported(folder, tmp_path):
    """Any layout: every record's text (keys in their order) is the same; records in no split come
    back; an id listed twice is listed once; an id without a record stays listed."""
    root, captions, splits = folder
    export_release(import_release(root), str(tmp_path / "out"))
    exported = json.loads((tmp_path / "out" / CAPTIONS_FILE).read_text("utf-8"))
    assert exported == captions and all(record_text(exported[i]) == record_text(captions[i]) for i in captions)
    train = np.load(tmp_path / "out" / "trn_names.npy").tolist()
    assert train == list(dict.fromkeys(splits["train"]))
    assert (tmp_path / "out" / "word2int.json").read_bytes() == VOCABULARY


# -- appending and versions ------------------------------------------------------------------------------
def test_an_append_is_a_new_version_and_the_old_one_still_reads(folder):
    root, _, _ = folder
    first = import_release(root, tags=["release"])
    second = append_rows(first, "train", [("n1", record_text(record(20))), ("n2", record_text(record(21)))],
                         partitions={"crawl_date=2026-12-01": "k1"}, tags=["crawl_date=2026-12-01"])  # fmt: skip
    assert second.version == "1" and second.splits["train"].rows == 10 and second.splits["val"].rows == 3
    assert [r["image_id"] for r in head_rows(second, "train")][-3:] == ["i06", "n1", "n2"]  # appended in order
    assert open_table(root, "release").splits["train"].rows == 8  # time travel, by tag
    assert open_table(root, 0).splits["train"].rows == 8 and resolve_version(root, "crawl_date=2026-12-01") == 1
    assert second.splits["train"].missing_records == 1  # the import's counts carried forward
    assert partition_ledger(root) == {
        "crawl_date=2026-12-01": {"key": "k1", "version": "1", "ingested_at": history(root)[1].created}
    }
    assert partition_ledger(root, 0) == {}
    with pytest.raises(DatasetFormatError, match=r"no version or tag 'v7' \(versions 0 to 1; tags: release, crawl"):
        open_table(root, "v7")


def test_two_appends_on_the_same_version_cannot_both_commit(folder):
    root, _, _ = folder
    read_by_both = import_release(root)
    append_rows(read_by_both, "train", [("a1", record_text(record(30)))], partitions={"p1": "k1"})
    with pytest.raises(ConcurrentCommit, match="another writer committed on top of version 0") as caught:
        append_rows(read_by_both, "train", [("b1", record_text(record(31)))], partitions={"p2": "k2"})
    assert caught.value.exit_code == 75
    latest = open_table(root)
    assert latest.version == "1" and "b1" not in {r["image_id"] for r in head_rows(latest, "train")}
    assert set(partition_ledger(root)) == {"p1"}


def test_a_crash_before_the_commit_leaves_the_version_before_and_the_next_run_completes(folder):
    """What a writer killed mid-commit leaves: its data files and a commit file not yet renamed into
    place. Neither is read; the next append commits the next version."""
    root, _, _ = folder
    table = import_release(root)
    orphan = Path(root, "table", "split=train", "part-00009-orphan.parquet")
    orphan.write_bytes(Path(root, "table", table.files_by_split["train"][0]).read_bytes())
    Path(root, "table", "_delta_log", "_commit_0badc0de.json.tmp").write_text('{"commitInfo": {}}')
    assert open_table(root).version == "0" and open_table(root).splits["train"].rows == 8
    after = append_rows(open_table(root), "train", [("n1", record_text(record(40)))], partitions={"p": "k"})
    assert after.version == "1" and after.splits["train"].rows == 9


def test_appends_and_conflicts_on_an_object_store(s3_bucket, folder):
    root, _, _ = folder
    uri = f"{s3_bucket}/tables/appends"
    table = import_release(uri, root)
    assert table.splits["train"].rows == 8 and head_rows(table, "val", 1)[0]["image_id"] == "i09"
    append_rows(table, "train", [("s1", record_text(record(50)))], partitions={"p1": "k1"})
    with pytest.raises(ConcurrentCommit):
        append_rows(table, "train", [("s2", record_text(record(51)))], partitions={"p2": "k2"})
    assert open_table(uri).splits["train"].rows == 9 and open_table(uri, 0).splits["train"].rows == 8


# -- migrating the earlier layout ------------------------------------------------------------------------
def old_layout(tmp_path) -> str:
    """Two versions of the earlier layout: an import, then an ingest of one partition (two records)."""
    captions = {f"i{n:02d}": record(n) for n in range(6)}
    first = {"train": ["i00", "i01", "i02"], "val": ["i03"], "test": ["i04", "i05"]}
    grown = {**captions, "n1": record(10), "n2": record(11)}
    second = {**first, "train": [*first["train"], "n1", "n2"]}
    root = tmp_path / "old"
    write_folder(root / "versions" / "aaaaaaaaaaaa", captions, first)
    write_folder(root / "versions" / "bbbbbbbbbbbb", grown, second)
    manifests = {
        "aaaaaaaaaaaa": {"created": "2026-12-01T00:00:00", "partitions": {}},
        "bbbbbbbbbbbb": {"created": "2026-12-02T00:00:00", "partitions": {"crawl_date=2026-12-02": "key2"}},
    }
    for name, manifest in manifests.items():
        (root / "versions" / name / "manifest.json").write_text(json.dumps(manifest))
    write_folder(root, grown, second)
    (root / "index").mkdir()
    return str(root)


def test_migration_keeps_the_history_as_tags_and_the_ledger(tmp_path):
    root = old_layout(tmp_path)
    table = migrate(root)
    assert table.version == "1" and [r["image_id"] for r in head_rows(table, "train")][-2:] == ["n1", "n2"]
    assert [c.tags for c in history(root)] == [("aaaaaaaaaaaa",), ("bbbbbbbbbbbb", "crawl_date=2026-12-02")]
    assert open_table(root, "aaaaaaaaaaaa").splits["train"].rows == 3  # the old names still read
    assert partition_ledger(root)["crawl_date=2026-12-02"]["key"] == "key2"  # not ingested again
    assert Path(root, "versions").exists()
    with pytest.raises(DatasetFormatError, match="has a table already"):
        migrate(root)


def test_the_table_flow_migrates_exports_and_lists_the_history(tmp_path, capsys):
    root = old_layout(tmp_path)
    flow = load_flow("dataset_table").main
    assert flow(["migrate", root, "--remove-old"]) == 0
    assert not Path(root, "versions").exists() and not Path(root, "index").exists()
    assert flow(["export", root, str(tmp_path / "out"), "--version", "aaaaaaaaaaaa"]) == 0
    assert np.load(tmp_path / "out" / "trn_names.npy").tolist() == ["i00", "i01", "i02"]
    capsys.readouterr()
    assert flow(["history", root]) == 0
    printed = capsys.readouterr().out
    assert "tags bbbbbbbbbbbb, crawl_date=2026-12-02 partitions crawl_date=2026-12-02" in printed
    assert "train          5 images" in printed


def test_a_synthetic_release_goes_through_the_flow_with_its_truth_and_comes_back_byte_for_byte(tiny_dataset, tmp_path):
    root, _, _ = tiny_dataset
    flow = load_flow("dataset_table").main
    into = tmp_path / "ds"
    assert flow(["import", str(root), "--into", str(into)]) == 0
    assert (into / "truth" / "_delta_log").is_dir()  # the sidecar's own table
    assert flow(["export", str(into), str(tmp_path / "out")]) == 0
    for name in ("ref_captions.json", "truth.jsonl", "trn_names.npy", "word2int.json"):
        assert (tmp_path / "out" / name).read_bytes() == (Path(root) / name).read_bytes(), name


def test_a_batch_over_a_split_reads_the_version_asked_for(folder):
    from components.serving.batch import batch_inputs

    root, _, _ = folder
    append_rows(import_release(root), "train", [("n1", record_text(record(20)))], partitions={"p": "k"})
    latest, _, kind = batch_inputs(root, "train", None, None)
    earlier, _, _ = batch_inputs(root, "train", None, None, "0")
    assert kind == "dataset" and [r["key"] for r in latest] == [r["key"] for r in earlier] + ["n1"]


@pytest.mark.parametrize(
    "files, blocks, expected",
    [
        ({"train": 1, "val": 1, "test": 1}, 100, 300),  # the default dataset: one file a split
        ({"train": 32, "val": 1, "test": 1}, 200, 213),  # CapOnImage2M's size: the split is most files
        ({"train": 3, "val": 1, "test": 1, "unsplit": 1}, 7, 14),  # unsplit files are read tasks too
        ({"train": 1}, 0, 1),
    ],
)
def test_the_reader_is_asked_for_the_blocks_that_give_the_split_its_share(files, blocks, expected):
    table = DatasetTable("d", 0, {}, {name: ("f",) * n for name, n in files.items()}, None)
    assert read_blocks(table, "train", blocks) == expected


# -- what an ingest's dedup asks of the table ----------------------------------------------------------------
def reference_duplicate(index, image_id, captions, digests):
    """The rules over every image held in memory (what ingest did before the table's columns)."""
    if index.known_product(image_id):
        return "duplicate_product", image_id
    if digests[0] in index.digests:
        return "duplicate_image", index.digests[digests[0]]
    near = index.near_duplicate_of(image_id, captions)
    if near is not None:
        return "near_duplicate", near
    return ("duplicate_image", index.digests[digests[1]]) if digests[1] in index.digests else None


@pytest.mark.parametrize("seed", range(4))
def test_dedup_over_the_tables_columns_decides_as_the_whole_dataset_in_memory(seed, tmp_path):
    from components.data.ingest.dedup import CrawlDedup, DatasetMatches, DedupIndex, known_ids
    from components.data.record.images import image_digest

    rng = np.random.default_rng(seed)
    words = [f"词{k}" for k in range(14)]  # few words: captions repeat across images, near duplicates happen

    def captions() -> list[str]:
        return list(rng.choice(words, size=int(rng.integers(1, 6))))

    dataset = {f"d{n:03d}": {**record(n), "ocr_txts": captions()} for n in range(60)}
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    for image_id in list(dataset)[::3]:  # a third of the images have files: their bytes are digested
        (root / "images" / f"{image_id}.png").write_bytes(image_id.encode())
    table = import_release(write_folder(root, dataset, {"train": list(dataset)[:50], "val": list(dataset)[50:]}))
    crawl = {}
    for n in range(40):
        image_id = f"d{n:03d}" if n % 13 == 0 else f"c{n:03d}"  # a few products the dataset has
        copied = f"d{int(rng.integers(60)):03d}".encode() if n % 7 == 0 else f"c{n}".encode()
        crawl[image_id] = (captions(), [image_digest(copied), image_digest(f"s{n}".encode())])
    assert known_ids(table, [*crawl, "nowhere"]) == {i for i in crawl if i in dataset}

    index = DedupIndex(0.7)  # the reference: every image of the dataset in memory, with its digest
    for image_id, value in dataset.items():
        index.add(image_id, value["ocr_txts"])
        if (root / "images" / f"{image_id}.png").exists():
            index.add(image_id, [], image_digest(image_id.encode()))
    fresh = {i: c for i, c in crawl.items() if i not in dataset}
    dedup = CrawlDedup(DatasetMatches.find(open_table(str(root)), fresh, 0.7), 0.7)
    decided, expected = [], []
    for image_id, (texts, digests) in fresh.items():
        found, wanted = dedup.duplicate(image_id, texts, digests), reference_duplicate(index, image_id, texts, digests)
        decided.append(found and found[0])
        expected.append(wanted and wanted[0])
        if wanted is not None and wanted[0] != "near_duplicate":
            assert found == wanted, image_id  # a near duplicate's named image may be either of a tie
        if found is None:
            dedup.keep(image_id, texts, digests)
        if wanted is None:
            for digest in digests:
                index.add(image_id, texts, digest)
    assert decided == expected
    assert {"duplicate_image", "near_duplicate", None} <= set(decided)  # the case covers every rule


def test_rows_carry_their_images_digests_and_caption_keys(folder):
    from components.data.record.images import image_digest
    from components.data.release.table import caption_key, scan_columns

    root, captions, _ = folder
    (Path(root) / "images").mkdir()
    (Path(root) / "images" / "i00.png").write_bytes(b"png bytes")
    table = import_release(root)
    table = append_rows(table, "train", [("n1", record_text({**record(1), "ocr_txts": ["a", "b", "a"]}))],
                        digests={"n1": ["crawled", "stored"]})  # fmt: skip
    rows = {}
    for batch in scan_columns(table, ["image_id", "digests", "caption_keys"]):
        rows.update({r["image_id"]: r for r in batch.to_pylist()})
    assert rows["i00"]["digests"] == [image_digest(b"png bytes")] and rows["i01"]["digests"] == []
    assert rows["n1"]["digests"] == ["crawled", "stored"]
    assert rows["n1"]["caption_keys"] == sorted({caption_key("a"), caption_key("b")})
    assert rows["i03"]["caption_keys"] == [caption_key(captions["i03"]["ocr_txts"][0])]
    assert rows["absent"]["caption_keys"] == [] and len(rows) == 14  # 8 train, 3 val, 2 unsplit, 1 appended
