"""A team's MLflow on this machine for the tests: a real PostgreSQL (Debian's packages, a fresh cluster
in a temporary folder, owned by a non-root user as ``initdb`` requires) and a real ``mlflow server``
on loopback storing runs and the registry in it, its artifacts proxied to an object store.

The same recipe a team runs (``infra/mlflow/``), started and stopped by the test session.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVICE_USER = "postgres"  # Debian's postgresql package creates it; initdb and postgres refuse root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them off ``PATH``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make setup` installs Debian's postgresql")
    return Path(found[-1]).parent


def _as_service_user() -> dict:
    """Popen arguments that run a program as the service user when we are root, as ourselves otherwise."""
    if os.geteuid() != 0:
        return {}
    return {"user": SERVICE_USER, "group": pwd.getpwnam(SERVICE_USER).pw_gid, "extra_groups": []}


def _wait_until(ready, what: str, process: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@contextmanager
def postgres(database: str = "mlflow", user: str = "mlflow") -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free loopback port with one database; yields its
    ``postgresql://`` URI (password authentication over TCP, as a team's server has)."""
    folder = Path(tempfile.mkdtemp(prefix="caponimage-postgres-"))  # not under pytest's root-only tmp
    password = secrets.token_hex(12)
    (folder / "password").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, SERVICE_USER)
        shutil.chown(folder / "password", SERVICE_USER)
    bin_dir, port, log = postgres_bin(), free_port(), folder / "postgres.log"
    initdb = [bin_dir / "initdb", "-D", folder / "data", "-U", user, f"--pwfile={folder / 'password'}"]
    initdb += ["--auth-host=scram-sha-256", "--auth-local=trust", "--encoding=UTF8", "--no-locale"]
    subprocess.run(initdb, check=True, capture_output=True, **_as_service_user())
    options = ["-c", "listen_addresses=127.0.0.1", "-p", str(port), "-k", str(folder), "-c", "fsync=off"]
    with open(log, "wb") as out:
        server = subprocess.Popen([bin_dir / "postgres", "-D", folder / "data", *options], stdout=out, stderr=out,
                                  **_as_service_user())  # fmt: skip
    try:
        probe = [bin_dir / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]
        _wait_until(lambda: subprocess.run(probe).returncode == 0, "postgres", server, log)
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run([bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
                       check=True, env=env, capture_output=True)  # fmt: skip
        yield f"postgresql://{user}:{password}@127.0.0.1:{port}/{database}"
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mlflow_server(backend_store_uri: str, artifacts_destination: str, workers: int = 2) -> Iterator[str]:
    """``mlflow server`` on a free loopback port over that store, serving (proxying) the artifacts,
    set up as ``infra/mlflow/mlflow-server.service`` sets it up (its settings in ``MLFLOW_*``
    variables); yields its ``http://`` tracking URI."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="caponimage-mlflow-server-"))
    log = folder / "server.log"
    settings = {
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts_destination,
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": str(workers),
    }
    command = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts"]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=out, env={**os.environ, **settings},
                                  start_new_session=True)  # fmt: skip
    uri = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    try:
        _wait_until(healthy, "mlflow server", server, log, timeout_s=120.0)
        yield uri
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
