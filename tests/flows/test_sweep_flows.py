"""The sweep, the registry and batch captioning for real: local Ray, sqlite MLflow, tiny data."""

import json

import mlflow
import pandas as pd
import pytest
from helpers import load_flow
from mlflow.tracking import MlflowClient

from components.data.release.table import read_split
from components.data.transforms.requests import dataset_request
from components.serving.registry import CHALLENGER, CHAMPION, Score, register
from components.tracking.registry import Registry


@pytest.fixture(scope="module")
def sweep(ray_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    argv = [
        "--preset", "tiny",  # two trials: model.n_layers in {grid: [1, 2]}
        "--set", f"data.dataset={root / 'data'}", "--set", "data.build_if_missing=true",
        "--set", f"tracking.tracking_uri={uri}", "--set", f"ray.storage_path={root / 'ray'}",
        "--set", "tracking.system_metrics=false", "--set", "ray.num_workers=1",
        "--set", "tune.grace_period=12",  # no ASHA rung before the end: both trials finish, whatever they score
    ]  # fmt: skip
    assert load_flow("tune").main(argv) == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("caponimage")
    parent = client.search_runs([experiment.experiment_id], "tags.task = 'tune'")[0]
    return root, uri, client, parent


def test_sweep_nests_one_run_per_trial_and_plots(sweep):
    _, _, client, parent = sweep
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.tune_trial != ''"
    )
    assert len(children) == 2
    assert sorted(c.data.params["model.n_layers"] for c in children) == ["1", "2"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert len(client.get_metric_history(child.info.run_id, "train/loss_generation")) >= 2  # a curve, not a point
        assert "val_subset/CIDEr" in child.data.metrics
    assert parent.data.tags["best_trial_run"] in {c.info.run_id for c in children}
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "sweep")]
    assert "sweep/metric_vs_parameters.png" in artifacts and "sweep/trials.jsonl" in artifacts
    evaluation = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.split = 'val'"
    )
    assert len(evaluation) == 1 and "val/CIDEr" in evaluation[0].data.metrics
    best = client.get_run(parent.data.tags["best_trial_run"])
    assert evaluation[0].data.params["model.n_layers"] == best.data.params["model.n_layers"]  # the winner's config
    assert parent.data.metrics["sweep/trials_stopped_early"] == 0  # both trials ran their 12 steps


def test_winner_is_the_champion_and_captions_every_box(sweep):
    root, uri, client, parent = sweep
    version = client.get_model_version_by_alias("caponimage", CHAMPION)
    assert version.tags["source_run"] == parent.data.tags["best_trial_run"]
    assert version.tags["score.split"] == "val" and version.tags["score.metric"] == "CIDEr"
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/caponimage@champion")
    requests = [
        dataset_request(str(root / "data" / "images"), r["image_id"], r["record"])
        for r in read_split(str(root / "data"), "test", 2)
    ]
    frame = pd.DataFrame({k: [r[k] for r in requests] for k in ("image", "info", "boxes")})
    captions = model.predict(frame)["captions"]
    assert [len(c) for c in captions] == [len(r["boxes"]) for r in requests]
    assert all(isinstance(c, str) for one in captions for c in one)
    mlflow.set_tracking_uri(None)


def test_a_worse_registration_does_not_move_the_champion(sweep):
    _, uri, client, parent = sweep
    champion = client.get_model_version_by_alias("caponimage", CHAMPION)
    recorded = Score.from_tags(champion.tags)
    worse = Score(recorded.metric, recorded.split, recorded.data_version, recorded.images, recorded.value - 1.0)
    mlflow.set_tracking_uri(uri)
    registration = register(Registry(uri, "caponimage"), champion.source, worse, run_id=champion.run_id)
    mlflow.set_tracking_uri(None)
    assert registration.alias == CHALLENGER
    assert str(client.get_model_version_by_alias("caponimage", CHAMPION).version) == str(champion.version)
    assert str(client.get_model_version_by_alias("caponimage", CHALLENGER).version) == registration.version


def test_caption_flow_captions_a_dataset_with_the_champion(sweep):
    root, uri, _, _ = sweep
    out = root / "captions"
    argv = ["--tracking-uri", uri, "--dataset", str(root / "data"), "--split", "val", "--limit", "3"]
    assert load_flow("caption").main([*argv, "--out", str(out), "--draw", "2"]) == 0
    written = json.loads((out / "captions.json").read_text("utf-8"))
    index = {r["image_id"]: json.loads(r["record"]) for r in read_split(str(root / "data"), "val", 3)}
    assert [w["id"] for w in written] == list(index)
    assert [len(w["captions"]) for w in written] == [len(index[w["id"]]["ocr_locs"]) for w in written]
    assert len(list(out.glob("*_captioned.png"))) == 2


def test_evaluate_flow_takes_a_registered_model(sweep):
    root, uri, client, _ = sweep
    argv = [
        "--preset", "tiny", "--model", "models:/caponimage@champion", "--limit", "2", "--sheets", "1", "--no-meteor",
        "--set", f"data.dataset={root / 'data'}", "--set", f"tracking.tracking_uri={uri}",
        "--set", "tracking.system_metrics=false",
    ]  # fmt: skip
    assert load_flow("evaluate").main(argv) == 0
    experiment = client.get_experiment_by_name("caponimage")
    run = client.search_runs(
        [experiment.experiment_id], "tags.model_source = 'models:/caponimage@champion'", max_results=1
    )[0]
    assert run.data.metrics["val/images"] == 2 and "val/CIDEr" in run.data.metrics


def test_bad_requests_in_a_batch_are_skipped_by_request_and_the_rest_captioned(sweep, tmp_path, capsys):
    root, uri, _, _ = sweep
    first = read_split(str(root / "data"), "val", 1)[0]
    (tmp_path / "good.png").write_bytes((root / "data" / "images" / f"{first['image_id']}.png").read_bytes())
    (tmp_path / "folder.png").mkdir()
    box = ["0.1_0.1_0.3_0.2"]
    lines = [
        {"image": "good.png", "boxes": box * 2, "info": "保温杯", "id": "sku-good"},
        {"image": "folder.png", "boxes": box, "info": "x", "id": "sku-folder"},
        {"image": "bad\u0000.png", "boxes": box, "info": "x", "id": "sku-nul"},
        {"image": "good.png", "boxes": box * 40, "info": "x", "id": "sku-crowded"},
    ]
    requests_file = tmp_path / "requests.jsonl"
    requests_file.write_text("\n".join(json.dumps(line) for line in lines) + "\n", "utf-8")
    out = tmp_path / "out"
    argv = ["--tracking-uri", uri, "--requests", str(requests_file), "--out", str(out), "--draw", "0"]
    assert load_flow("caption").main(argv) == 0
    written = json.loads((out / "captions.json").read_text("utf-8"))
    assert [(w["id"], len(w["captions"])) for w in written] == [("sku-good", 2)]
    printed = capsys.readouterr().out
    assert "skipped 3 of 4: " in printed
    assert all(reason in printed for reason in ("missing_image", "unsafe_path", "too_many_boxes"))
    assert all(f"'{request}'" in printed for request in ("sku-folder", "sku-nul", "sku-crowded"))
