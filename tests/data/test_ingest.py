"""Ingest without Ray: partitions, versions, the ledger, crashes, bad lines and images.

OCR is not what is under test here: a fixture engine reads each image's texts from a JSON file made
from the synthetic crawl's ground truth. The real engine runs in tests/flows/test_ingest_flow.py.
"""

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from components import storage
from components.config import load_job_config
from components.data.ingest.crawl import PRODUCTS_FILE, SUCCESS_FILE, find_partitions
from components.data.ingest.partitions import ocr_in_process, plan_ingest, run_ingest
from components.data.prepare import prepare_data
from components.data.release.format import check_release
from components.data.release.index import dataset_version, load_index
from components.data.release.versions import LEDGER_FILE, list_versions, version_folder
from components.data.synthetic.build import SyntheticSpec, build_crawl, crawl_image
from components.errors import PartitionChanged

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


def test_a_partition_becomes_the_next_version_and_val_test_stay(world):
    dataset, crawls, partition, section = world
    before = {name: (dataset / name).read_bytes() for name in ("val_names.npy", "tst_names.npy")}
    vocabulary = json.loads((dataset / "word2int.json").read_text("utf-8"))
    old_train = [str(i) for i in np.load(dataset / "trn_names.npy")]
    old = dataset_version(str(dataset))
    result = ingest(dataset, crawls, section)
    # the ingest wrote the new version's Parquet index, at the top and in its version folder: fresh as read
    assert load_index(str(dataset)).version == result.version
    assert load_index(version_folder(str(dataset), result.version)).version == result.version
    assert load_index(version_folder(str(dataset), old)).splits["train"].rows == len(old_train)
    assert result.previous_version == old and result.version == dataset_version(str(dataset)) != old
    assert result.stages["added"] == 8 and result.rejected["digits"] == 0  # the price is no caption ...
    assert result.texts["digits"] == 8  # ... it was on every image and is masked
    assert {name: (dataset / name).read_bytes() for name in before} == before  # val and test unchanged
    grown = json.loads((dataset / "word2int.json").read_text("utf-8"))  # the vocabulary only grew:
    assert len(grown) - len(vocabulary) == len(result.vocabulary_added) > 0  # the crawl's new characters
    assert {t: grown[t] for t in vocabulary} == vocabulary  # every old id keeps its character
    train = [str(i) for i in np.load(dataset / "trn_names.npy")]
    assert train[: len(old_train)] == old_train and len(train) == len(old_train) + 8
    record = json.loads((dataset / "ref_captions.json").read_text("utf-8"))[f"s{CRAWL_SEED}-0000000"]
    assert record["ocr_txts"] and len(record["all_locs"]) == len(record["ocr_locs"]) + 1
    with Image.open(dataset / "images" / f"s{CRAWL_SEED}-0000000.png") as stored:
        assert min(stored.size) == 256  # crawled at 512 to 768, stored at the release's size
    checked = check_release(dataset, strict=True)  # raises on any bad record
    assert len(checked.by_split["train"].records) == len(train)
    assert [v for v, _ in list_versions(str(dataset))] == [old, result.version]


def test_an_earlier_version_reads_back(world):
    dataset, crawls, _, section = world
    old = dataset_version(str(dataset))
    new = ingest(dataset, crawls, section).version
    job = prepare_data(load_job_config("tiny", [f"data.dataset={dataset}", f"data.version={old}"]))
    assert dataset_version(job.data.dataset) == old and job.data.images_root == str(dataset / "images")
    assert dataset_version(version_folder(str(dataset), new)) == new
    with pytest.raises(Exception, match="data.version.*no complete version 'nope'"):
        prepare_data(load_job_config("tiny", [f"data.dataset={dataset}", "data.version=nope"]))


def test_a_repeat_does_nothing_and_a_changed_partition_is_refused(world):
    dataset, crawls, partition, section = world
    first = ingest(dataset, crawls, section)
    again = plan_ingest(str(dataset), str(crawls), section)
    assert again.partitions == [] and "already ingested" in again.skipped["crawl_date=2026-11-20"]
    ledger = json.loads((dataset / LEDGER_FILE).read_text())
    assert ledger["crawl_date=2026-11-20"]["version"] == first.version
    with open(partition / PRODUCTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"product_id": "late", "title": "t", "attributes": {}, "image": "x.png"}) + "\n")
    with pytest.raises(PartitionChanged, match="crawl_date=2026-11-20 .* --reingest"):
        plan_ingest(str(dataset), str(crawls), section)
    redo = ingest(dataset, crawls, section, reingest=True)
    assert redo.rejected["duplicate_product"] == 8 and redo.rejected["missing_image"] == 1
    assert redo.version == first.version  # nothing new: the version stays


def test_incomplete_partitions_wait(world):
    dataset, crawls, partition, section = world
    (partition / SUCCESS_FILE).unlink()
    plan = plan_ingest(str(dataset), str(crawls), section)
    assert plan.partitions == [] and plan.skipped == {"crawl_date=2026-11-20": "incomplete (no _SUCCESS yet)"}
    assert find_partitions(str(crawls))[0].complete is False


@pytest.mark.parametrize("crash_at", ["word2int.json", "ref_captions.json", "trn_names.npy"])
def test_a_crash_while_publishing_leaves_the_old_version(world, monkeypatch, crash_at):
    """A crash at each top-level write leaves the old records; after the grown vocabulary was written
    (a superset: the old ids keep their characters) the old records read with it, a version of its own
    until the next run of the ingest publishes over it."""
    dataset, crawls, _, section = world
    old, old_train = dataset_version(str(dataset)), (dataset / "trn_names.npy").read_bytes()
    write = storage.write_bytes

    def crash(location, data):
        if location == str(dataset / crash_at):
            raise OSError("injected crash")
        write(location, data)

    monkeypatch.setattr(storage, "write_bytes", crash)
    with pytest.raises(OSError, match="injected crash"):
        ingest(dataset, crawls, section)
    assert (dataset / "trn_names.npy").read_bytes() == old_train  # the old records, whole
    if crash_at == "word2int.json":
        assert dataset_version(str(dataset)) == old  # still reads as the old version
    assert check_release(dataset, strict=True).by_split["val"].records
    assert not (dataset / LEDGER_FILE).exists()  # nothing recorded as ingested
    monkeypatch.setattr(storage, "write_bytes", write)
    assert ingest(dataset, crawls, section).stages["added"] == 8  # the next run completes it


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
    old = dataset_version(remote_dataset)
    result = ingest(remote_dataset, remote_crawls, section)
    assert result.stages["added"] == 8 and dataset_version(remote_dataset) == result.version != old
    assert [v for v, _ in list_versions(remote_dataset)] == [old, result.version]
    assert dataset_version(version_folder(remote_dataset, old)) == old  # the earlier version reads back
    assert storage.exists(f"{remote_dataset}/images/s{CRAWL_SEED}-0000003.png")
    assert plan_ingest(remote_dataset, remote_crawls, section).partitions == []  # a repeat does nothing
