"""Shared fixtures (a tiny synthetic dataset, a real S3-compatible endpoint, the team's MLflow server on
PostgreSQL, one local Ray cluster) and the tiers: every test is marked with its folder's tier (unit,
data, model, flows), and ``services`` where it uses the team's server."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.data.synthetic.build import SyntheticSpec, build_release

BUCKET = "caponimage-test"
TIERS = ("unit", "data", "model", "deployment", "flows")


def pytest_collection_modifyitems(items):
    for item in items:
        tier = Path(item.path).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        if "team_mlflow" in item.fixturenames:  # the team server's tests, wherever they are
            item.add_marker(pytest.mark.services)


@pytest.fixture(autouse=True)
def no_mlflow_variables(monkeypatch):
    """Every test starts without MLflow's variables: the user's shell does not leak in, and
    ``mlflow.set_tracking_uri`` or ``mlflow.set_experiment`` in one test (they set
    ``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_ID``) does not reach the next."""
    import mlflow.tracking.fluent

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A 30-image Chinese dataset in the release format; treat it as read-only."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    by_split, tokenizer = build_release(SyntheticSpec(images=30, seed=7), root, workers=1)
    return root, by_split, tokenizer


@pytest.fixture(scope="session")
def s3_bucket():
    """``s3://caponimage-test`` on moto's S3 server on loopback (an HTTP endpoint, not an in-process mock).

    The endpoint and dummy credentials go into the environment before any Ray cluster starts, so
    Ray's workers and pyarrow inside them reach the same server.
    """
    import boto3
    from moto.server import ThreadedMotoServer
    from servers import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
        }.items():
            patch.setenv(key, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}"
    server.stop()


@pytest.fixture(scope="session")
def team_mlflow(s3_bucket):
    """A team's tracking server for the session: ``mlflow server`` on loopback over a real PostgreSQL,
    artifacts proxied to ``s3://caponimage-test/mlflow`` (tests/servers.py). Tests share it: each uses
    its own experiment and model names."""
    from servers import mlflow_server, postgres

    with postgres() as database, mlflow_server(database, f"{s3_bucket}/mlflow") as uri:
        yield uri


@pytest.fixture(scope="session")
def ray_cluster(s3_bucket):
    """One local Ray cluster for every end-to-end test (never a stray one: address='local')."""
    import ray

    ray.init(address="local", num_cpus=4, object_store_memory=300 * 1024**2, include_dashboard=False)
    yield
    ray.shutdown()
