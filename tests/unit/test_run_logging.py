"""What a run records beside its metrics, against a real sqlite store, without Ray: a dataset version
logged by several runs at once (the trials of a sweep start together, each logs the training data as
its input), and why a run failed."""

import threading

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
    logged = sorted(i.dataset.digest for r in runs for i in r.inputs.dataset_inputs)
    assert logged == sorted(v for v in versions for _ in range(racers))  # each run has its one input
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
