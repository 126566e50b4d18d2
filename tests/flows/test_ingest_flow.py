"""flows/ingest.py for real: two crawl partitions, the real OCR engine, a local Ray cluster, sqlite MLflow;
a model trains on the new version in tests/flows/test_retrain_flow.py."""

import json
import shutil

import pytest
from helpers import load_flow
from mlflow.tracking import MlflowClient

from components.data.release.table import head_rows, open_table, partition_ledger
from components.data.synthetic.build import SyntheticSpec, build_crawl, crawl_image

PARTITIONS = {"crawl_date=2026-11-20": 21, "crawl_date=2026-11-21": 22}


@pytest.fixture(scope="module")
def ingested(ray_cluster, tiny_dataset, tmp_path_factory):
    root, _, _ = tiny_dataset
    place = tmp_path_factory.mktemp("ingest")
    dataset = place / "dataset"
    shutil.copytree(root, dataset)
    for name, seed in PARTITIONS.items():
        build_crawl(SyntheticSpec(images=5, seed=seed), place / "crawls", name.split("=")[1], workers=1)
    uri = f"sqlite:///{place / 'mlflow.db'}"
    argv = [
        "--preset", "tiny", "--crawl", str(place / "crawls"), "--dataset", str(dataset),
        "--set", f"tracking.tracking_uri={uri}", "--set", "tracking.system_metrics=false",
    ]  # fmt: skip
    before = open_table(str(dataset)).version
    assert load_flow("ingest").main(argv) == 0
    return dataset, uri, argv, before


def ingest_runs(uri):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("caponimage")
    return client.search_runs([experiment.experiment_id], "tags.task = 'ingest'")


def test_two_partitions_become_one_new_version_read_by_real_ocr(ingested):
    dataset, uri, _, before = ingested
    version = open_table(str(dataset)).version
    assert version != before
    ledger = partition_ledger(str(dataset))
    assert set(ledger) == set(PARTITIONS) and {e["version"] for e in ledger.values()} == {version}
    (run,) = ingest_runs(uri)
    assert run.info.status == "FINISHED" and run.data.metrics["stage/lines"] == 10
    assert run.data.metrics["stage/added"] >= 5 and run.data.metrics["ocr/seconds_per_image"] > 0
    assert run.data.metrics["texts/total"] > run.data.metrics["texts/kept"] > 0
    (source,) = run.inputs.dataset_inputs
    assert source.dataset.digest.startswith(f"v{version}-") and source.tags[0].value == "ingest"
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "ingest")}
    assert {"ingest/examples.png", "ingest/summary.txt", "ingest/rejections.txt"} <= artifacts
    # What the real OCR engine read is what was drawn on the crawled images (the clean texts: the
    # labelled OCR-like noise drawn into a few is for the cleaning rules and the fluency filter to drop).
    rows = head_rows(open_table(str(dataset)), "train")
    records = {row["image_id"]: json.loads(row["record"]) for row in rows}
    matched = total = 0
    for seed in PARTITIONS.values():
        for i in range(5):
            made = crawl_image(SyntheticSpec(images=5, seed=seed), i, draw=False)
            if made.record.image_id in records:
                drawn = [b.shown for b in made.truth.boxes if b.noise is None]
                total += len(drawn)
                matched += len(set(drawn) & set(records[made.record.image_id]["ocr_txts"]))
    assert total > 0 and matched / total >= 0.9


def test_the_new_version_passes_the_strict_check(ingested):
    dataset, _, _, _ = ingested
    assert load_flow("check_dataset").main([str(dataset), "--strict"]) == 0


def test_a_second_run_ingests_nothing_and_starts_no_run(ingested, capsys):
    dataset, uri, argv, _ = ingested
    version = open_table(str(dataset)).version
    assert load_flow("ingest").main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("already ingested") == 2 and open_table(str(dataset)).version == version
    assert len(ingest_runs(uri)) == 1
