"""One MLflow run per training run name, against a real sqlite store, without Ray: a resume continues
the run that trained it (a killed driver's RUNNING run included), a ghost without checkpoints is closed."""

import pytest
from mlflow.tracking import MlflowClient

from components.config import load_job_config
from components.tracking.runs import ensure_experiment, job_run
from components.training.tracked_fit import earlier_run


def job_at(tmp_path, *overrides):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return load_job_config("tiny", [f"tracking.tracking_uri={uri}", "tracking.system_metrics=false", *overrides])


def test_a_resumed_training_continues_its_mlflow_run(tmp_path):
    job = job_at(tmp_path)
    with pytest.raises(RuntimeError), job_run(job, "pretrain-nightly", tags={"ray_run_name": "nightly"}) as failed:
        raise RuntimeError("the training failed after a checkpoint")
    first = failed.run_id
    assert earlier_run(job, "nightly", "checkpoint_000006") == first
    assert earlier_run(job, "another", "checkpoint_000006") is None
    longer = job_at(tmp_path, "train.steps=24")
    with job_run(longer, "pretrain-nightly", tags={"ray_run_name": "nightly"}, resume_run_id=first) as resumed:
        again = resumed.run_id
    run = MlflowClient(job.tracking.tracking_uri).get_run(again)
    assert again == first and run.info.status == "FINISHED"
    assert run.data.params["train.steps"] == "12" and run.data.tags["changed_on_resume"] == "train.steps"
    experiment = MlflowClient(job.tracking.tracking_uri).get_experiment_by_name("caponimage")
    assert len(MlflowClient(job.tracking.tracking_uri).search_runs([experiment.experiment_id])) == 1


def test_a_killed_drivers_run_is_taken_over_or_closed(tmp_path):
    job = job_at(tmp_path)
    client = MlflowClient(job.tracking.tracking_uri)
    experiment = ensure_experiment(job.tracking.tracking_uri, job.tracking.experiment)
    # what `kill -9` leaves: a run the store still says is RUNNING
    ghost = client.create_run(experiment, tags={"ray_run_name": "a", "task": "pretrain"}, run_name="pretrain-a")
    ghost = ghost.info.run_id
    assert client.get_run(ghost).info.status == "RUNNING"
    assert earlier_run(job, "a", "checkpoint_000006") == ghost  # checkpoints to resume: the same run goes on
    assert earlier_run(job, "a", None) is None  # none: it starts over in a new run ...
    closed = client.get_run(ghost)
    assert closed.info.status == "KILLED" and "driver stopped" in closed.data.tags["interrupted"]  # ... no ghost


def test_a_driver_killed_with_sigkill_leaves_a_run_the_next_one_takes_over(tmp_path):
    """A real ``kill -9``: the process gets no chance to end its run, so the store says RUNNING."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = (
        "import os, signal\n"
        "from components.config import load_job_config\n"
        "from components.tracking.runs import job_run\n"
        f"job = load_job_config('tiny', ['tracking.tracking_uri={uri}', 'tracking.system_metrics=false'])\n"
        "with job_run(job, 'pretrain-b', tags={'ray_run_name': 'b'}) as run:\n"
        "    print(run.run_id, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    killed = subprocess.run([sys.executable, "-c", driver], cwd=repo, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ghost = killed.stdout.strip()
    job = job_at(tmp_path)
    client = MlflowClient(job.tracking.tracking_uri)
    assert client.get_run(ghost).info.status == "RUNNING"
    resume = earlier_run(job, "b", "checkpoint_000004")
    with job_run(job, "pretrain-b", tags={"ray_run_name": "b"}, resume_run_id=resume) as run:
        taken_over = run.run_id
    run = client.get_run(ghost)
    assert taken_over == ghost and run.info.status == "FINISHED"
    assert run.data.tags["interrupted"].endswith("resumed from checkpoint_000004")
