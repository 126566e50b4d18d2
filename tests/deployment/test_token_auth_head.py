"""The scheduled host's settings (``infra/retrain.env.example``) driving the submitter against a real
Ray head with token authentication on, as ``ray_cluster.yaml`` starts it.

The head is a second local Ray cluster, so this folder sorts before ``tests/flows`` (whose shared
cluster then starts after this one has stopped): one cluster on the machine at a time.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from servers import free_port

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
SUBMITTER = str(REPO / "infra" / "submit_retrain.py")


@pytest.fixture(scope="module")
def token_head(tmp_path_factory):
    """A local Ray head with token auth (``RAY_AUTH_MODE=token``), its token in a file of its own;
    (the dashboard's address, the token file)."""
    import ray

    if ray.is_initialized():
        pytest.skip("this process already runs the suite's local Ray cluster: one cluster at a time")
    folder = tmp_path_factory.mktemp("token-head")
    token = folder / "ray_auth_token"
    token.write_text(secrets.token_hex(32) + "\n")  # what `ray get-auth-token --generate` writes
    token.chmod(0o600)
    dashboard = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    start = [RAY, "start", "--head", f"--port={free_port()}", "--num-cpus=1", "--disable-usage-stats",
             "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}"]  # fmt: skip
    started = subprocess.run(start, env=env, capture_output=True, text=True, timeout=240)
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield f"http://127.0.0.1:{dashboard}", token
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def settings(tmp_path: Path, address: str, token_path: Path) -> Path:
    """The env example as a user fills it in: the head's address and the token's file."""
    text = (REPO / "infra" / "retrain.env.example").read_text()
    text = text.replace("http://ray-head.internal:8265", address).replace(
        "/etc/caponimage/ray_auth_token", str(token_path)
    )
    path = tmp_path / "retrain.env"
    path.write_text(text)
    return path


def submit(env_file: Path, slot: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}  # the file says them
    command = [sys.executable, SUBMITTER, "--env-file", str(env_file), "--slot", slot]
    return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=300)


def test_the_env_example_submits_to_a_token_auth_head_and_reports_the_jobs_exit_code(token_head, tmp_path):
    address, token = token_head
    slot = f"test-{secrets.token_hex(3)}"
    done = submit(settings(tmp_path, address, token), slot)
    # The job reached the cluster and ran its entry point, which is the image's path: absent on this
    # machine, so Python exits 2, and the submitter exits with the job's own code.
    assert f"submitted caponimage-retrain-{slot}" in done.stdout, done.stderr[-2000:]
    assert "/home/ray/caponimage/flows/retrain.py" in done.stdout and done.returncode == 2
    again = submit(settings(tmp_path, address, token), slot)  # a second start in the slot follows, never resubmits
    assert "was submitted before" in again.stdout and again.returncode == 2


def test_without_the_token_the_submitter_says_so_in_one_line_and_exits_77(token_head, tmp_path):
    address, _ = token_head
    done = submit(settings(tmp_path, address, tmp_path / "not-copied-yet"), "test-no-token")
    assert done.returncode == 77 and "wants its token" in done.stderr and "Traceback" not in done.stderr
    wrong = tmp_path / "wrong_token"
    wrong.write_text(secrets.token_hex(32) + "\n")
    done = submit(settings(tmp_path, address, wrong), "test-wrong-token")
    assert done.returncode == 77 and "wants its token" in done.stderr
