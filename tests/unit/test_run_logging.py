"""What a run records beside its metrics, against a real sqlite store, without Ray: a dataset version
logged by several runs at once (the trials of a sweep start together, each logs the training data as
its input), and why a run failed."""

import json
import os
import threading
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.config import load_job_config
from components.tracking.runs import TrackedRun, job_run, lost_insert_race


def log_at_once(uri: str, experiment_id: str, version: str, racers: int) -> list[str]:
    """``racers`` runs (one thread each) log one new dataset version at the same moment; what each
    got: ``ok`` or its error."""
    barrier, outcomes = threading.Barrier(racers), []

    def trial():
        mlflow.set_tracking_uri(uri)
        run = TrackedRun(uri, MlflowClient(uri).create_run(experiment_id).info.run_id)
        barrier.wait()
        try:
            run.log_dataset("/data/crawls/synthetic", version, "training")
            outcomes.append("ok")
        except MlflowException as error:
            outcomes.append(str(error.message)[:200])

    threads = [threading.Thread(target=trial) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_runs_logging_one_new_dataset_version_at_once_all_get_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("caponimage")
    versions, racers = ("v-20261204", "v-20261205", "v-20261206"), 6  # without a retry most rounds lose one
    for version in versions:
        assert log_at_once(uri, experiment_id, version, racers) == ["ok"] * racers
    runs = client.search_runs([experiment_id])
    assert len(runs) == racers * len(versions)
    logged = sorted(i.dataset.digest.rsplit("-", 1)[0] for r in runs for i in r.inputs.dataset_inputs)
    assert logged == sorted(f"v{v}" for v in versions for _ in range(racers))  # each run has its one input
    sources = {json.loads(i.dataset.source)["uri"] for r in runs for i in r.inputs.dataset_inputs}
    assert sources == {"/data/crawls/synthetic/table"}  # the table's location; the name is the dataset's
    assert {i.dataset.name for r in runs for i in r.inputs.dataset_inputs} == {"synthetic"}
    assert {r.data.tags["data_version"] for r in runs} == set(versions)


@pytest.mark.parametrize(
    ("message", "lost"),
    [
        ("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name", True),
        ('(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint "dataset_pk"', True),
        ("(sqlite3.OperationalError) database is locked", False),
        ("Run 'abc' not found", False),
    ],
)
def test_only_a_unique_key_violation_is_a_lost_race(message, lost):
    assert lost_insert_race(MlflowException(message)) is lost


def test_a_failed_run_says_why_without_its_secrets(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = load_job_config("tiny", [f"tracking.tracking_uri={uri}", "tracking.system_metrics=false"])
    with pytest.raises(ConnectionError, match="unreachable"), job_run(job, "pretrain-fails") as failing:
        raise ConnectionError("postgresql://caponimage:s3cr3t@db:5432/crawls unreachable\n  after 3 tries")
    run = MlflowClient(uri).get_run(failing.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("ConnectionError: postgresql://***@db:5432/crawls unreachable")
    assert "s3cr3t" not in run.data.tags["error"]


SECRET_URIS = [  # (location, its secret's tail)
    ("s3://AK:se?cret-1@minio.internal:9000/datasets/ds", "cret-1"),  # "?" in the password
    ("s3://AK:se#cret-2@minio.internal/datasets/ds", "cret-2"),  # "#" in the password
    ("s3://AK:se/cr@et-3@minio.internal/datasets/ds", "et-3"),  # "/" and "@"
    ("https://minio.internal/datasets/ds?X-Amz-Signature=secret-4&X-Amz-Date=1", "secret-4"),
    ("https://minio.internal/datasets/ds#access_token=secret-5&state=x", "secret-5"),
]


@pytest.mark.parametrize(("location", "secret"), SECRET_URIS)
def test_no_sink_stores_a_credential(location, secret, tmp_path, capsys, caplog):
    """Each place a location is written: a run's params, config/job.json, its tags (at the start and
    later), a text artifact, its dataset input, a registered version's tags and description, a log line
    and an error message. The host and path stay readable; the secret appears in none."""
    import json
    import logging

    from components.cli import run
    from components.errors import ConfigError
    from components.tracking.registry import Registry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = load_job_config(preset="tiny", overrides=[f"tracking.tracking_uri={uri}"]).with_overrides(
        data={"dataset": location}, tracking={"system_metrics": False}
    )
    client = MlflowClient(uri)
    with job_run(job, "sinks", tags={"crawl_root": location}) as tracked:
        tracked.set_tag("dataset_seen", location)
        tracked.set_tags({"partitions": f"read from {location}"})
        tracked.log_text(f"ingested {location}\n", "ingest/summary.txt")
        tracked.log_dataset(location, "v1", "training")
        with mlflow.start_run(run_id=tracked.run_id, nested=True):
            model = mlflow.pyfunc.log_model(name="model", python_model=lambda rows: rows, pip_requirements=[])
    registry = Registry(uri, "sinks")
    version = registry.add_version(
        model.model_uri, run_id=tracked.run_id, tags={"dataset": location}, description=location
    )
    registry.tag_version(version.version, "data_source", location)

    stored = client.get_run(tracked.run_id)
    artifacts = {path: client.download_artifacts(tracked.run_id, path, str(tmp_path)) for path in ("config", "ingest")}
    registered = client.get_model_version("sinks", version.version)

    def failing(argv):  # a flow's main, as cli.run calls it (its log handlers redact)
        logging.getLogger("components.test").warning("reading %s", location)
        raise ConfigError("data.dataset", f"{location} is not a dataset")

    code = run(failing, [])

    sinks = {
        "params": json.dumps(stored.data.params),
        "run tags": json.dumps(stored.data.tags),
        "config/job.json": (Path(artifacts["config"]) / "job.json").read_text(),
        "text artifact": (Path(artifacts["ingest"]) / "summary.txt").read_text(),
        "dataset input": json.dumps([i.dataset.source + i.dataset.name for i in stored.inputs.dataset_inputs]),
        "registry tags": json.dumps(registered.tags),
        "registry description": registered.description,
        "log line": caplog.text,
        "error message": capsys.readouterr().err,
    }
    assert code == 2
    for sink, text in sinks.items():
        assert secret not in text, f"{sink} stores the secret: {text[:300]}"
        assert "minio.internal" in text, f"{sink} lost the host: {text[:300]}"


def test_a_run_of_the_same_work_left_running_by_a_dead_driver_is_closed_by_the_next(tmp_path):
    """An ingest (or evaluation) killed mid-way leaves its run RUNNING; the next run of the same work
    closes it as KILLED, tagged why. A live driver's run, another machine's and other work stay open."""
    import subprocess
    import sys

    from components.processes import this_host
    from components.tracking.runs import DRIVER_TAG, WORK_TAG, ensure_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = load_job_config(preset="tiny", overrides=[f"tracking.tracking_uri={uri}", "tracking.system_metrics=false"])
    client = MlflowClient(uri)
    experiment = ensure_experiment(uri, job.tracking.experiment)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = {
        "killed": {WORK_TAG: "w1", DRIVER_TAG: f"{this_host()}:{dead.pid}"},
        "alive": {WORK_TAG: "w1", DRIVER_TAG: f"{this_host()}:{os.getpid()}"},
        "elsewhere": {WORK_TAG: "w1", DRIVER_TAG: f"another-host:{dead.pid}"},
        "other work": {WORK_TAG: "w2", DRIVER_TAG: f"{this_host()}:{dead.pid}"},
    }
    ids = {name: client.create_run(experiment, tags=tags).info.run_id for name, tags in left.items()}
    with job_run(job.with_overrides(task="ingest"), "ingest-again", work_key="w1") as run:
        assert run.info().data.tags[DRIVER_TAG] == f"{this_host()}:{os.getpid()}"
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {"killed": "KILLED", "alive": "RUNNING", "elsewhere": "RUNNING", "other work": "RUNNING"}
    assert f"pid {dead.pid}" in client.get_run(ids["killed"]).data.tags["interrupted"]


def test_the_ui_link_asks_for_the_model_training_layout():
    from components.tracking.runs import ui_link

    assert (
        ui_link("http://mlflow:5000/", "7") == "http://mlflow:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
    assert ui_link("http://h:5000", "7", "abc").endswith("#/experiments/7/runs/abc?workflowType=machine_learning")


def test_params_show_paths_without_this_machines_folders(tmp_path, monkeypatch):
    from components.tracking.runs import portable

    monkeypatch.chdir(tmp_path)
    assert portable(str(tmp_path / "data" / "synthetic")) == "data/synthetic"  # under the working directory
    assert portable("/srv/team/crawls") == "team/crawls" and portable("file:///srv/team/crawls") == "team/crawls"
    assert portable("s3://bucket/caponimage") == "s3://bucket/caponimage" and portable(0.5) == 0.5
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    flags = [f"tracking.tracking_uri={uri}", "tracking.system_metrics=false", f"data.dataset={tmp_path / 'data'}"]
    job = load_job_config("tiny", [*flags, "ray.storage_path=/mnt/scratch/ray"])
    with job_run(job, "paths") as run:
        pass
    params = MlflowClient(uri).get_run(run.run_id).data.params
    assert params["data.dataset"] == "data" and params["ray.storage_path"] == "scratch/ray"
    assert [key for key, value in params.items() if value.startswith("/")] == []
    local = MlflowClient(uri).download_artifacts(run.run_id, "config/job.json", str(tmp_path))
    logged = json.loads(Path(local).read_text())
    assert logged["data"]["dataset"] == str(tmp_path / "data")  # the whole path stays in the run's config
