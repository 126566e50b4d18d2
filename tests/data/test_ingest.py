"""Ingest without Ray: partitions, table versions, the history as ledger, crashes, bad lines and images.

OCR is not what is under test here: a fixture engine reads each image's texts from a JSON file made
from the synthetic crawl's ground truth. The real engine runs in tests/flows/test_ingest_flow.py.
"""

import io
import json
import shutil

import pytest
from PIL import Image

from components import storage
from components.config import load_job_config
from components.data.ingest.crawl import PRODUCTS_FILE, SUCCESS_FILE, find_partitions
from components.data.ingest.partitions import ocr_in_process, plan_ingest, run_ingest
from components.data.prepare import prepare_dataset
from components.data.release.format import check_release
from components.data.release.table import export_release, head_rows, history, open_table, partition_ledger
from components.data.synthetic.build import SyntheticSpec, build_crawl, crawl_image
from components.errors import ConfigError, PartitionChanged

CRAWL_SEED = 11


def fixture_engine(spec: SyntheticSpec, partition, path) -> str:
    """Each crawled image's true caption boxes and texts (in pixels at its crawled size), plus a price."""
    texts = {}
    for i in range(spec.images):
        made = crawl_image(spec, i)
        record, (w, h) = made.record, made.image.size
        texts[f"images/{record.image_id}.png"] = [
            [b.x1 * w, b.y1 * h, b.x2 * w, b.y2 * h, text]
            for b, text in zip(record.caption_boxes, record.captions, strict=True)
        ] + [[2, 2, 40, 20, "¥99"]]
    path.write_text(json.dumps(texts, ensure_ascii=False), "utf-8")
    return f"fixture:{path}"


@pytest.fixture
def world(tiny_dataset, tmp_path):
    """A copy of the tiny dataset to ingest into, a crawl of 8 products, and an ingest config."""
    root, _, _ = tiny_dataset
    dataset = tmp_path / "dataset"
    shutil.copytree(root, dataset)
    spec = SyntheticSpec(images=8, seed=CRAWL_SEED)
    partition = build_crawl(spec, tmp_path / "crawls", "2026-11-20", workers=1)
    engine = fixture_engine(spec, partition, tmp_path / "ocr.json")
    # Neither the near-duplicate rule nor the fluency filter is under test here: a filter calibrated on
    # a 30-image dataset is too unsure to judge a crawl (tests/unit/test_fluency.py, test_benchmark.py).
    overrides = [f"ingest.ocr_engine={engine}", "ingest.near_duplicate_share=0", "ingest.fluency_threshold=-100"]
    job = load_job_config("tiny", overrides)
    return dataset, tmp_path / "crawls", partition, job.ingest


def ingest(dataset, crawls, section, **kwargs):
    return run_ingest(plan_ingest(str(dataset), str(crawls), section, **kwargs), section, ocr=ocr_in_process)


def train_ids(dataset, version=None) -> list[str]:
    return [row["image_id"] for row in head_rows(open_table(str(dataset), version), "train")]


def test_a_partition_becomes_the_next_version_and_val_test_stay(world, tmp_path):
    dataset, crawls, partition, section = world
    old_table = open_table(str(dataset))
    vocabulary = json.loads((dataset / "word2int.json").read_text("utf-8"))
    old_train = train_ids(dataset)
    result = ingest(dataset, crawls, section)
    table = open_table(str(dataset))
    assert result.previous_version == old_table.version == "0" and result.version == table.version == "1"
    assert [c.tags for c in history(str(dataset))] == [(), ("crawl_date=2026-11-20",)]
    assert result.stages["added"] == 8 and result.rejected["digits"] == 0  # the price is no caption ...
    assert result.texts["digits"] == 8  # ... it was on every image and is masked
    for split in ("val", "test"):  # val and test unchanged
        assert head_rows(table, split) == head_rows(old_table, split)
    export_release(table, str(tmp_path / "export"))
    grown = json.loads((tmp_path / "export" / "word2int.json").read_text("utf-8"))  # the vocabulary only grew:
    assert len(grown) - len(vocabulary) == len(result.vocabulary_added) > 0  # the crawl's new characters
    assert {t: grown[t] for t in vocabulary} == vocabulary  # every old id keeps its character
    train = train_ids(dataset)
    assert train[: len(old_train)] == old_train and len(train) == len(old_train) + 8
    assert train_ids(dataset, "0") == old_train  # the version before reads back as it was
    record = json.loads((tmp_path / "export" / "ref_captions.json").read_text("utf-8"))[f"s{CRAWL_SEED}-0000000"]
    assert record["ocr_txts"] and len(record["all_locs"]) == len(record["ocr_locs"]) + 1
    with Image.open(dataset / "images" / f"s{CRAWL_SEED}-0000000.png") as stored:
        assert min(stored.size) == 256  # crawled at 512 to 768, stored at the release's size
    checked = check_release(tmp_path / "export", images_root=dataset / "images", strict=True)  # raises on any bad
    assert len(checked.by_split["train"].records) == len(train)


def test_an_earlier_version_reads_back(world):
    dataset, crawls, _, section = world
    new = ingest(dataset, crawls, section).version
    job, prepared = prepare_dataset(load_job_config("tiny", [f"data.dataset={dataset}", "data.version=0"]))
    assert prepared.version == "0" and prepared.images_root == str(dataset / "images")
    assert prepared.table.splits["train"].rows == len(train_ids(dataset)) - 8
    by_tag = prepare_dataset(load_job_config("tiny", [f"data.dataset={dataset}", "data.version=crawl_date=2026-11-20"]))
    assert by_tag[1].version == new == "1"
    with pytest.raises(ConfigError, match="data.version.*no version or tag 'nope'"):
        prepare_dataset(load_job_config("tiny", [f"data.dataset={dataset}", "data.version=nope"]))


def test_a_repeat_does_nothing_and_a_changed_partition_is_refused(world):
    dataset, crawls, partition, section = world
    first = ingest(dataset, crawls, section)
    again = plan_ingest(str(dataset), str(crawls), section)
    assert again.partitions == [] and "already ingested" in again.skipped["crawl_date=2026-11-20"]
    assert partition_ledger(str(dataset))["crawl_date=2026-11-20"]["version"] == first.version
    with open(partition / PRODUCTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"product_id": "late", "title": "t", "attributes": {}, "image": "x.png"}) + "\n")
    with pytest.raises(PartitionChanged, match="crawl_date=2026-11-20 .* --reingest"):
        plan_ingest(str(dataset), str(crawls), section)
    redo = ingest(dataset, crawls, section, reingest=True)
    assert redo.rejected["duplicate_product"] == 8 and redo.rejected["missing_image"] == 1
    assert redo.stages["added"] == 0 and open_table(str(dataset)).splits["train"].rows == len(train_ids(dataset, 1))
    assert partition_ledger(str(dataset))["crawl_date=2026-11-20"]["version"] == redo.version == "2"  # its new key


def test_a_crawl_repeating_ingested_images_under_new_ids_is_dropped(world):
    """The dedup rules against the table's columns: the first ingest's rows carry their images'
    digests and caption keys, so the same images under new ids are duplicates (the same bytes), and
    re-encoded ones near duplicates (the same captions)."""
    dataset, crawls, partition, section = world
    ingest(dataset, crawls, section)
    again = crawls / "crawl_date=2026-11-21"
    shutil.copytree(partition, again)
    lines = [json.loads(line) for line in (again / PRODUCTS_FILE).read_text("utf-8").splitlines() if line.strip()]
    for line in lines:
        line["product_id"] = f"again-{line['product_id']}"
    for line in lines[4:]:  # other bytes, the same picture and texts
        with Image.open(again / line["image"]) as image:
            image.convert("RGB").save(again / line["image"], format="PNG", compress_level=1)
    (again / PRODUCTS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    overrides = [f"ingest.ocr_engine={section.ocr_engine}", "ingest.fluency_threshold=-100"]
    strict = load_job_config("tiny", [*overrides, "ingest.near_duplicate_share=0.7"]).ingest
    result = ingest(dataset, crawls, strict, only="crawl_date=2026-11-21")
    assert result.rejected["duplicate_image"] == 4 and result.rejected["near_duplicate"] == 4
    assert result.stages["added"] == 0 and not list((dataset / "images").glob("again-*"))
    first = lines[0]["product_id"].removeprefix("again-")
    assert result.duplicates_of[lines[0]["product_id"]] == ("duplicate_image", first)


def test_incomplete_partitions_wait(world):
    dataset, crawls, partition, section = world
    (partition / SUCCESS_FILE).unlink()
    plan = plan_ingest(str(dataset), str(crawls), section)
    assert plan.partitions == [] and plan.skipped == {"crawl_date=2026-11-20": "incomplete (no _SUCCESS yet)"}
    assert find_partitions(str(crawls))[0].complete is False


@pytest.mark.parametrize("crash_at", ["vocabulary", "data file", "commit"])
def test_a_crash_while_committing_leaves_the_old_version(world, monkeypatch, crash_at):
    """A crash before the commit (storing the grown vocabulary, writing the data files, committing)
    leaves the version before as the current one and nothing recorded as ingested; the next run
    completes it."""
    from components.data.release import table as table_module

    dataset, crawls, _, section = world
    old_train = train_ids(dataset)
    targets = {"vocabulary": "store_vocabulary", "data file": "_DataFiles", "commit": "_delta_schema"}
    original = getattr(table_module, targets[crash_at])

    def crash(*args, **kwargs):
        raise OSError("injected crash")

    monkeypatch.setattr(table_module, targets[crash_at], crash)
    if crash_at == "vocabulary":
        import components.data.ingest.partitions as partitions_module

        monkeypatch.setattr(partitions_module, "store_vocabulary", crash)
    with pytest.raises(OSError, match="injected crash"):
        ingest(dataset, crawls, section)
    assert open_table(str(dataset)).version == "0" and train_ids(dataset) == old_train  # the old records, whole
    assert partition_ledger(str(dataset)) == {}  # nothing recorded as ingested
    monkeypatch.undo()
    assert getattr(table_module, targets[crash_at]) is original
    assert ingest(dataset, crawls, section).stages["added"] == 8  # the next run completes it
    assert open_table(str(dataset)).version == "1"


def test_bad_lines_and_bad_images_are_counted_not_fatal(world):
    dataset, crawls, partition, section = world
    (partition / "images" / "corrupt.png").write_bytes(b"\x89PNG broken")
    with io.BytesIO() as huge:
        Image.new("L", (8001, 8001)).save(huge, format="PNG")  # 64M pixels, a few kB
        (partition / "images" / "huge.png").write_bytes(huge.getvalue())
    good = json.loads((partition / PRODUCTS_FILE).read_text("utf-8").splitlines()[0])
    extra = [
        "{not json",
        json.dumps({"product_id": "p1", "title": "t", "image": "images/x.png"}),
        json.dumps({**good, "product_id": "p2", "image": "../../outside.png"}),
        json.dumps({**good, "product_id": "p3", "image": "images/absent.png"}),
        json.dumps({**good, "product_id": "p4", "image": "images/corrupt.png"}),
        json.dumps({**good, "product_id": "p5", "image": "images/huge.png"}),
        json.dumps(good),  # the same product twice in one crawl
    ]
    with open(partition / PRODUCTS_FILE, "a", encoding="utf-8") as handle:
        handle.write("\n".join(extra) + "\n")
    result = ingest(dataset, crawls, section)
    assert result.stages["lines"] == 15 and result.stages["added"] == 8
    expected = {"bad_json", "missing_key", "unsafe_path", "missing_image", "corrupt_image", "oversized_image"}
    assert {k for k, v in result.rejected.items() if v == 1} >= expected | {"duplicate_product"}
    assert any("line 9" in m and "bad_json" in m for m in result.messages)


def test_dataset_and_crawl_on_an_object_store(world, s3_bucket):
    """The same ingest with the crawl and the dataset behind s3:// (moto's server on loopback)."""
    dataset, crawls, _, section = world
    remote_dataset, remote_crawls = f"{s3_bucket}/ingest/dataset", f"{s3_bucket}/ingest/crawls"
    storage.copy_dir(str(dataset), remote_dataset)
    storage.copy_dir(str(crawls), remote_crawls)
    result = ingest(remote_dataset, remote_crawls, section)
    assert result.stages["added"] == 8 and open_table(remote_dataset).version == result.version == "1"
    assert [c.number for c in history(remote_dataset)] == [0, 1]
    assert train_ids(remote_dataset, 0) == train_ids(dataset)  # the earlier version reads back
    assert storage.exists(f"{remote_dataset}/images/s{CRAWL_SEED}-0000003.png")
    assert plan_ingest(remote_dataset, remote_crawls, section).partitions == []  # a repeat does nothing
