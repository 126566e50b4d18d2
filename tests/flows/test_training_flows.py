"""The training flows for real: a local Ray cluster, 2 DDP workers, tiny data, and the team's MLflow:
a real ``mlflow server`` over PostgreSQL with its artifacts proxied to S3 (tests/servers.py), so that
every run, logged model, dataset input and registration here goes through the server a team runs.

Slow (about a minute per run): these are the few end-to-end tests of the suite.
"""

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from helpers import chromium, load_flow
from mlflow.tracking import MlflowClient

from components.data.release.table import open_table
from components.tracking.runs import ui_link
from components.tracking.sources import ModelSource, logged_model_uri

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))  # pictures a person looks at


@pytest.fixture(scope="module")
def place(tmp_path_factory, team_mlflow):
    root = tmp_path_factory.mktemp("e2e")
    uri = team_mlflow
    common = [
        "--preset", "tiny",
        "--set", f"data.dataset={root / 'data'}", "--set", "data.build_if_missing=true",
        "--set", f"tracking.tracking_uri={uri}", "--set", f"ray.storage_path={root / 'ray'}",
        "--set", "tracking.system_metrics=false",
    ]  # fmt: skip
    return root, uri, common


def latest_run(uri: str, task: str | None = None) -> mlflow.entities.Run:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("caponimage")
    where = f"tags.task = '{task}'" if task else ""
    runs = client.search_runs([experiment.experiment_id], where, order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0]


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key))


@pytest.fixture(scope="module")
def pretrained(ray_cluster, place):
    _, uri, common = place
    with pytest.MonkeyPatch.context() as patch:  # the driver's opening of the table at a version
        table_module, loads = importlib.import_module("components.data.release.table"), []
        opened = table_module.open_table
        patch.setattr(
            table_module, "open_table", lambda dataset, version=None: loads.append(dataset) or opened(dataset, version)
        )
        assert load_flow("pretrain").main(common) == 0
    run = latest_run(uri)
    run.index_loads = loads
    return run


def test_the_driver_opens_the_dataset_table_once_and_logs_the_version_it_read(pretrained, place):
    root, _, _ = place
    assert pretrained.index_loads == [str(root / "data")]  # prepared once, handed down: no floor opens it again
    logged = pretrained.inputs.dataset_inputs[0].dataset
    version = open_table(str(root / "data")).version
    assert pretrained.data.tags["data_version"] == version and logged.digest.startswith(f"v{version}-")
    assert json.loads(logged.source)["uri"] == str(root / "data" / "table")  # the table's location


def test_pretraining_learns_and_tracks_everything(pretrained, place):
    _, uri, _ = place
    run = pretrained
    assert run.info.status == "FINISHED"
    assert run.data.params["train.steps"] == "12" and run.data.params["model.d_model"] == "64"
    losses = history(uri, run.info.run_id, "train/loss_generation")
    assert [s for s, _ in losses] == [2, 4, 6, 8, 10, 12]
    assert losses[-1][1] < losses[0][1]
    assert history(uri, run.info.run_id, "train/loss_matching")  # 3:1 mix: matching steps happened
    assert [s for s, _ in history(uri, run.info.run_id, "val_subset/CIDEr")] == [6, 12]
    # The synthetic crawl has a truth: validation scores each input's caption parts apart.
    for channel in ("info", "image", "loc"):
        assert [s for s, _ in history(uri, run.info.run_id, f"val_subset/field_accuracy_{channel}")] == [6, 12]
    assert 0 <= run.data.metrics["val_subset/role_accuracy_brand"] <= 1
    # Every metric sits in a section of the charts view (system/ too, switched off here).
    assert {name.partition("/")[0] for name in run.data.metrics} == {"train", "negatives", "val_subset", "data"}
    assert [s for s, _ in history(uri, run.info.run_id, "negatives/neighbour")][-1] == 12
    checkpoint = Path(run.data.tags["checkpoint_uri"])
    assert checkpoint.name == "checkpoint_00000012" and (checkpoint / "model.pt").is_file()
    # The checkpoint is the run's logged pyfunc model (weights, config, vocabulary, no optimiser state).
    model_uri = logged_model_uri(run.info.run_id, uri)
    folder = Path(ModelSource.parse(run.info.run_id).checkpoint_folder(uri))
    assert model_uri and {"model.pt", "config.json", "word2int.json"} <= {p.name for p in folder.iterdir()}
    assert MlflowClient(uri).get_logged_model(model_uri.removeprefix("models:/")).name == "pretrain"  # by task
    assert not (folder / "training.pt").exists() and not MlflowClient(uri).list_artifacts(run.info.run_id, "checkpoint")
    plots = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/curriculum.png", "plots/losses.png"}
    assert run.data.metrics["data/skipped_records"] == 0
    # What a reader of the MLflow UI sees: the preset, no sweep settings, the data read, the right layout.
    assert run.data.params["preset"] == "tiny" and not any(k.startswith(("tune.", "ingest.")) for k in run.data.params)
    assert not history(uri, run.info.run_id, "eta_s")
    (dataset,) = run.inputs.dataset_inputs
    assert (
        dataset.dataset.digest.startswith(f"v{run.data.tags['data_version']}-") and dataset.tags[0].value == "training"
    )
    experiment = MlflowClient(uri).get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_mlflow_ui_opens_on_model_training_and_lists_the_runs(pretrained, place):
    """The team server's UI in Chromium at the link the README gives: the Model training layout and the
    runs table, not the GenAI overview MLflow 3 opens by default."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, uri, _ = place
    experiment = MlflowClient(uri).get_experiment_by_name("caponimage")
    browser = chromium(1400, 900)
    try:
        browser.get(ui_link(uri, experiment.experiment_id))
        WebDriverWait(browser, 60).until(lambda b: "matching run" in b.find_element(By.TAG_NAME, "body").text)
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "/overview" not in browser.current_url and "workflowType=machine_learning" in browser.current_url
        assert pretrained.info.run_name in page and "Run Name" in page
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "mlflow_runs.png"))
    finally:
        browser.quit()


def test_finetuning_starts_from_pretraining(pretrained, place):
    _, uri, common = place
    parent = pretrained.info.run_id
    assert load_flow("finetune").main([*common, "--init-from", "latest", "--set", "train.steps=4"]) == 0
    run = latest_run(uri, task="finetune")
    assert run.info.status == "FINISHED" and "mlflow.parentRunId" not in run.data.tags  # a row of its own
    assert run.data.tags["pretrain_run_id"] == parent and run.data.params["task"] == "finetune"
    inputs = MlflowClient(uri).get_run(run.info.run_id).inputs  # the pre-trained model, linked in the UI
    assert [m.model_id for m in inputs.model_inputs] == [logged_model_uri(parent, uri).removeprefix("models:/")]
    assert run.data.params["train.generation_per_matching"] == "(1, 0)"
    assert not history(uri, run.info.run_id, "train/loss_matching")  # generation only
    first_finetune = history(uri, run.info.run_id, "train/loss_generation")[0][1]
    first_pretrain = history(uri, parent, "train/loss_generation")[0][1]
    assert first_finetune < first_pretrain  # it did not start from scratch


def test_the_main_job_ends_in_a_champion_that_captions(pretrained, place, tiny_dataset, tmp_path):
    """`make run` is pre-training then fine-tuning: the fine-tuned model goes through the champion
    gate (the first one wins), and flows/caption.py's default model is then there."""
    root, uri, common = place
    client = MlflowClient(uri)
    finetuned = latest_run(uri, task="finetune")
    champion = client.get_model_version_by_alias("caponimage", "champion")
    assert champion.tags["source_run"] == finetuned.info.run_id and champion.tags["score.metric"] == "CIDEr"
    assert not [tag for tag in champion.tags if tag.startswith("metric.")]  # the scores live on the model:
    logged = client.get_logged_model(logged_model_uri(finetuned.info.run_id, uri).removeprefix("models:/"))
    assert logged.name == "finetune" and "val/CIDEr" in {metric.key for metric in logged.metrics}
    evaluation = client.search_runs(
        [finetuned.info.experiment_id], f"tags.mlflow.parentRunId = '{finetuned.info.run_id}' and tags.split = 'val'"
    )
    assert len(evaluation) == 1 and "val/CIDEr" in evaluation[0].data.metrics
    scored = evaluation[0].data.metrics  # field accuracy and the oracle's ceiling beside the scores
    assert 0 <= scored["val/field_accuracy_info"] <= 1 and scored["val/oracle_CIDEr"] > scored["val/CIDEr"]
    table = client.download_artifacts(evaluation[0].info.run_id, "table.md", str(tmp_path))
    assert "| oracle (ceiling) |" in Path(table).read_text("utf-8")
    dataset, _, _ = tiny_dataset
    image_id = next(iter(json.loads((dataset / "ref_captions.json").read_text("utf-8"))))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"boxes": ["0.1_0.1_0.4_0.2", "0.1_0.5_0.6_0.6"], "info": "品牌 保温杯"}), "utf-8")
    argv = ["--tracking-uri", uri, "--image", str(dataset / "images" / f"{image_id}.png"), "--boxes", str(boxes)]
    assert load_flow("caption").main([*argv, "--out", str(tmp_path / "out")]) == 0
    written = json.loads((tmp_path / "out" / "captions.json").read_text("utf-8"))
    assert len(written[0]["captions"]) == 2


def test_worker_failure_resumes_from_last_checkpoint(pretrained, place):
    _, uri, common = place
    flags = ["--set", "train.fail_at_step=9", "--set", "train.checkpoint_every=6", "--set", "ray.max_failures=1"]
    assert load_flow("pretrain").main([*common, *flags]) == 0
    run = latest_run(uri)
    assert run.info.status == "FINISHED"
    # Until the failure it is the pre-training run again, with the same seed: the same losses.
    for key in ("train/loss_generation", "train/loss_matching"):
        same_seed = history(uri, pretrained.info.run_id, key)
        assert [s for s, _ in same_seed if s <= 6], key  # a name the run logs
        assert [v for s, v in history(uri, run.info.run_id, key) if s <= 6] == [v for s, v in same_seed if s <= 6]
    assert run.data.tags["resumed_from_step"] == "6"  # the restart went on from the step-6 checkpoint
    assert not history(uri, run.info.run_id, "resumed_from")  # a tag, not a chart
    # Steps 7 and 8 were trained twice (the failure came at 9); the chart has one value per step.
    assert [s for s, _ in history(uri, run.info.run_id, "train/loss_generation")] == [2, 4, 6, 8, 10, 12]
    assert Path(run.data.tags["checkpoint_uri"]).name == "checkpoint_00000012"


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_step(pretrained, place, capsys):
    from components.cli import run

    _, uri, common = place
    flags = ["--set", "train.lr=1e30", "--set", "train.steps=4", "--set", "ray.max_failures=0"]  # weights overflow
    assert run(load_flow("pretrain").main, [*common, *flags]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: loss_")  # Ray's worker logs may follow it
    assert " = nan at step 2: training stopped (lower train.lr" in errors[0]
    run_record = latest_run(uri)
    assert run_record.info.status == "FAILED" and run_record.data.params["train.lr"] == "1e+30"


@pytest.mark.parametrize(
    "flags,key",
    [
        (["--set", "train.lr=-0.1"], "train.lr"),
        (["--set", "train.lrr=0.1"], "train.lrr"),
        (["--set", "data.dataset=/nonexistent/dataset"], "data.dataset"),
    ],
)
def test_bad_config_fails_before_ray_starts(flags, key, tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO / "flows" / "pretrain.py"), "--preset", "tiny", *flags],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert f"config key '{key}'" in result.stderr
    assert "Started a local Ray instance" not in result.stdout + result.stderr
    assert not (tmp_path / "mlflow.db").exists() and time.monotonic() - started < 60


def test_a_flow_beside_another_local_cluster_says_at_once_why_it_will_not_start(pretrained, place, tmp_path):
    """This session's cluster (the fixture's) runs; a second pretrain.py that would start its own local
    cluster used to start it and lose its workers minutes in. It exits 75 (try again later) before
    Ray or MLflow start, naming the cluster and how to attach to it."""
    import os

    import ray

    from components.cluster import local_ray_clusters

    assert ray.get_runtime_context().gcs_address in local_ray_clusters()
    _, _, common = place
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO / "flows" / "pretrain.py"), *common, "--set", f"tracking.tracking_uri={uri}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 75, result.stderr[-3000:]
    assert "error: another Ray cluster runs on this machine (GCS " in result.stderr
    assert f"--set ray.address={ray.get_runtime_context().gcs_address}" in result.stderr
    assert "Started a local Ray instance" not in result.stdout + result.stderr
    assert not (tmp_path / "mlflow.db").exists() and time.monotonic() - started < 120


def test_dataset_and_checkpoints_on_s3(pretrained, s3_bucket, place):
    """The pre-training run's own dataset, from S3, with another seed: other losses."""
    from components import storage

    local_root, uri, common = place
    dataset = f"{s3_bucket}/datasets/tiny"
    storage.copy_dir(str(local_root / "data"), dataset)
    flags = ["--set", f"data.dataset={dataset}", "--set", f"ray.storage_path={s3_bucket}/ray", "--set", "train.steps=6"]
    assert load_flow("pretrain").main([*common, *flags, "--set", "train.seed=1"]) == 0
    run = latest_run(uri)
    assert run.data.tags["data_version"] == pretrained.data.tags["data_version"]  # the same images and captions
    other_seed = [v for s, v in history(uri, run.info.run_id, "train/loss_generation") if s <= 4]
    assert other_seed != [v for s, v in history(uri, pretrained.info.run_id, "train/loss_generation") if s <= 4]
    checkpoint = run.data.tags["checkpoint_uri"]
    assert checkpoint.startswith(f"{s3_bucket}/ray/") and checkpoint.endswith("checkpoint_00000006")
    assert storage.exists(storage.join(checkpoint, "model.pt"))
    assert run.data.params["data.dataset"] == dataset and run.data.metrics["data/skipped_records"] == 0


def test_evaluate_logs_metrics_plots_and_pictures(pretrained, place, tmp_path):
    _, uri, common = place
    parent = pretrained.info.run_id
    assert load_flow("evaluate").main([*common, "--model", parent, "--sheets", "8", "--no-meteor"]) == 0
    run = latest_run(uri)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent
    assert {"val/BLEU-4", "val/CIDEr", "val/Div-2", "val/human_Div-2", "val/length_aspect_r"} <= set(run.data.metrics)
    params = run.data.params  # the evaluation's own: what it evaluated and how, not the training's
    assert params["task"] == "evaluate" and params["eval.split"] == "val" and params["model.d_model"] == "64"
    assert not any(key.startswith("train.") for key in params) and run.info.run_name.startswith("evaluate-val-")
    model_id = logged_model_uri(parent, uri).removeprefix("models:/")  # the pre-training's logged model
    client = MlflowClient(uri)
    inputs = client.get_run(run.info.run_id).inputs  # (search_runs leaves model inputs out)
    assert [m.model_id for m in inputs.model_inputs] == [model_id]
    scored = {m.key: m for m in client.get_logged_model(model_id).metrics}  # its page lists its scores
    assert scored["val/CIDEr"].value == run.data.metrics["val/CIDEr"] and scored["val/CIDEr"].dataset_digest
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"table.md", "predictions_val.jsonl", "predictions_val.json", "scores_val.json", "plots", "sheets"} <= top
    table = json.loads(
        Path(client.download_artifacts(run.info.run_id, "predictions_val.json", str(tmp_path))).read_text()
    )
    assert {"image_id", "box", "reference", "prediction"} <= set(table["columns"]) and len(table["data"]) > 0
    assert "predictions_val.json" in run.data.tags["mlflow.loggedArtifacts"]  # the UI lists it as a table
    assert "plots/length_vs_aspect.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    sheets = [a.path for a in client.list_artifacts(run.info.run_id, "sheets")]
    images = int(run.data.metrics["val/images"])
    assert len([s for s in sheets if s.endswith("_captions.png")]) == min(8, images) > 0
    assert len([s for s in sheets if s.endswith("_types.png")]) == min(8, images)


def test_ablation_nests_variants_and_rebuilds_its_table(ray_cluster, place, tmp_path):
    _, uri, common = place
    flags = ["--variants", "full", "--seeds", "0", "--finetune-steps", "2", "--eval-images", "4"]
    small = ["--set", "train.steps=4", "--set", "train.val_every=4", "--set", "train.checkpoint_every=4"]
    ablate = load_flow("ablate")
    assert ablate.main([*common, *small, *flags, "--out", str(tmp_path / "ablation.md")]) == 0
    table = (tmp_path / "ablation.md").read_text("utf-8")
    # one row in Table 2, in Table 3 and in the field-accuracy section, read against the full oracle's ceiling
    table2, fields = table.split("## Table 3")[0], table.split("## Field accuracy")[1].split("\n## ")[0]
    assert table2.count("| full |") == 1 and table.count("| 5 I+II+III progressive |") == 1
    assert fields.count("| full |") == 1
    assert "## Field accuracy" in table and "underpowered" in table  # 4 steps reach no 70% of the ceiling
    assert "| context |" not in table and "| 2 Level I |" not in table  # only the variant run
    assert "4 pre-training steps" in table and "then 2 generation fine-tuning steps for every variant" in table
    assert "on 4 val images" in table
    client = MlflowClient(uri)
    parent = client.search_runs(
        [client.get_experiment_by_name("caponimage").experiment_id],
        "tags.ablation = 'parent'",
        order_by=["attributes.start_time DESC"],
    )[0]
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["ablation_variant"] for c in children) == ["full-s0", "full-s0-finetune"]
    assert {"full/s0_CIDEr", "full/s0_Div-2", "full/s0_human_Div-2"} <= set(parent.data.metrics)
    assert {"full/s0_field_accuracy_ctx_diag", "ceiling/full_field_accuracy_all"} <= set(parent.data.metrics)
    rebuilt = tmp_path / "rebuilt.md"
    assert ablate.main([*common, "--from-run", parent.info.run_id, "--out", str(rebuilt)]) == 0
    assert rebuilt.read_text("utf-8") == table
