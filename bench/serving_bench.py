"""Online captioning under load, on loopback: Ray Serve (components/serving/online.py) beside MLflow's
own scoring server (`mlflow models serve`) on the same model in the same run, then a champion switch
and a killed replica under load. Every request loop is bounded in count and in time.

    python bench/serving_bench.py                              # the local champion, 5-box test images
    python bench/serving_bench.py --model RUN_OR_CHECKPOINT --requests 48 --out docs/serving_bench.json

The model (default: `models:/caponimage@champion` of sqlite:///mlflow.db) is copied into a temporary
registry as versions 1 and 2, so that the switch moves an alias nobody else reads. Both servers get one
worker (Serve: one replica batching up to 8 images; MLflow: one uvicorn worker); greedy captions, no
publishing checks (the scoring server's default). Clients: 1, 4 and 16 at once, each request one image
with 5 caption boxes; p50/p95/p99 latency and throughput per server and concurrency.
Switch: 8 clients for ``--event-s`` while `champion` moves 1 -> 2 a third of the way in; failures and
the version each answer came from. Kill: 2 replicas, 8 clients for ``--event-s``, one replica killed a
third of the way in; a client retries a failed request (at most 3 times); lost responses (failed after
its retries), retries, and the seconds until a new replica runs beside the survivor.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import mlflow
import requests as http
from mlflow.tracking import MlflowClient

from components.data.release.table import ensure_table, read_split
from components.data.transforms.requests import dataset_request
from components.tracking.pyfunc import example_request, log_pyfunc
from components.tracking.runs import TrackedRun
from components.tracking.sources import ModelSource

NAME = "caponimage-bench"
BOXES = 5
MAX_REQUESTS = 5000  # the switch and kill runs stop at this count or their duration, whichever comes first


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def five_box_products(dataset: str, count: int) -> list[dict]:
    """Test images with at least 5 caption boxes, cut to exactly 5."""
    products = []
    for row in read_split(dataset, "test", None):
        request = dataset_request(str(Path(dataset) / "images"), row["image_id"], row["record"])
        if len(request["boxes"]) >= BOXES:
            products.append({**request, "boxes": list(request["boxes"][:BOXES])})
        if len(products) == count:
            return products
    raise SystemExit(f"only {len(products)} test images of {dataset} have {BOXES} boxes; {count} wanted")


def temporary_registry(model: str, tracking_uri: str, folder: Path, example: dict) -> str:
    """The model as versions 1 (champion) and 2 of ``NAME`` in a sqlite registry of its own."""
    checkpoint = ModelSource.parse(model, "--model").checkpoint_folder(tracking_uri)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("serving-bench", str(folder / "artifacts")))
    for _ in range(2):
        with mlflow.start_run() as run:
            frame = example_request(example["image"], example["info"], example["boxes"])
            info = log_pyfunc(TrackedRun(uri, run.info.run_id), checkpoint, frame)
        mlflow.register_model(info.model_uri, NAME)
    MlflowClient(uri).set_registered_model_alias(NAME, "champion", "1")
    return uri


# --- clients -------------------------------------------------------------------------------------
def serve_body(product: dict) -> dict:
    return {"image": base64.b64encode(product["image"]).decode(), "info": product["info"], "boxes": product["boxes"]}


def mlflow_body(product: dict) -> dict:
    row = [base64.b64encode(product["image"]).decode(), product["info"], product["boxes"]]
    return {"dataframe_split": {"columns": ["image", "info", "boxes"], "data": [row]}}


def load(url: str, bodies: list[dict], clients: int, total: int, limit_s: float, retries: int = 0) -> dict:
    """``clients`` threads send ``total`` requests in all (or until ``limit_s``); per request its
    latency, status, the version that answered and how many retries it took."""
    results: list[dict] = []
    lock, counter = threading.Lock(), iter(range(total))
    deadline = time.monotonic() + limit_s

    def client() -> None:
        session = http.Session()
        while time.monotonic() < deadline:
            with lock:
                number = next(counter, None)
            if number is None:
                return
            started, tries, answer, version = time.perf_counter(), 0, None, None
            while True:
                try:
                    response = session.post(url, json=bodies[number % len(bodies)], timeout=120)
                    answer = response.status_code
                    if answer == 200:
                        version = response.json().get("model_version")
                except http.RequestException:
                    answer = "connection"
                if answer == 200 or tries >= retries:
                    break
                tries += 1
                time.sleep(0.2 * tries)
            with lock:
                results.append({"seconds": time.perf_counter() - started, "status": answer, "version": version,
                                "retries": tries, "at": time.monotonic()})  # fmt: skip

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"results": results, "wall_s": time.monotonic() - began}


def summary(run: dict) -> dict:
    ok = sorted(r["seconds"] for r in run["results"] if r["status"] == 200)
    cut = statistics.quantiles(ok, n=100, method="inclusive") if len(ok) >= 2 else [float("nan")] * 99
    return {
        "requests": len(run["results"]),
        "failed": sum(r["status"] != 200 for r in run["results"]),
        "p50_ms": round(1000 * cut[49], 1),
        "p95_ms": round(1000 * cut[94], 1),
        "p99_ms": round(1000 * cut[98], 1),
        "images_per_s": round(len(ok) / run["wall_s"], 2),
    }


# --- servers ---------------------------------------------------------------------------------------
def start_serve(tracking_uri: str, replicas: int, poll_s: float = 1.0) -> str:
    """Serve on a free port; each replica with 2 CPUs (Ray sets a replica's torch threads to its CPUs:
    2, as many as the scoring server's torch uses on this machine)."""
    from ray import serve

    from components.serving.online import Captioner, serve_args

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    args = serve_args(model=f"models:/{NAME}@champion", tracking_uri=tracking_uri, poll_s=poll_s)
    deployment = Captioner.options(num_replicas=replicas, ray_actor_options={"num_cpus": 2})
    serve.run(deployment.bind(args.model_dump()), name="caponimage", route_prefix="/")
    return f"http://127.0.0.1:{port}"


def scoring_env(tracking_uri: str) -> dict[str, str]:
    """The scoring server runs ``uvicorn`` by name: this interpreter's scripts first on ``PATH``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path}


def start_mlflow_scoring(tracking_uri: str, folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}/1",
               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    log = open(folder / "mlflow-serve.log", "wb")  # noqa: SIM115 (the server writes it until it stops)
    server = subprocess.Popen(command, stdout=log, stderr=log, env=scoring_env(tracking_uri),
                              start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2):
                return server, url
        except OSError:
            if server.poll() is not None:
                raise SystemExit(
                    f"mlflow models serve exited:\n{(folder / 'mlflow-serve.log').read_text()[-2000:]}"
                ) from None
            time.sleep(0.5)
    raise SystemExit("mlflow models serve did not answer /ping in 180 s")


def replica_count() -> int:
    from ray import serve

    status = serve.status().applications["caponimage"].deployments["Captioner"]
    return status.replica_states.get("RUNNING", 0)


def alive_replicas() -> set[str]:
    from ray.util.state import list_actors

    found = list_actors(filters=[("class_name", "=", "ServeReplica:caponimage:Captioner"), ("state", "=", "ALIVE")])
    return {actor.name for actor in found}


def kill_one_replica() -> tuple[str, set[str]]:
    import ray

    before = alive_replicas()
    victim = sorted(before)[0]
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    return victim, before


# --- the three runs --------------------------------------------------------------------------------
def compare(serve_url: str, mlflow_url: str, products: list[dict], requests: int, limit_s: float) -> list[dict]:
    rows = []
    for clients in (1, 4, 16):
        for server, url, body in (("ray-serve", f"{serve_url}/caption", serve_body),
                                  ("mlflow-models-serve", f"{mlflow_url}/invocations", mlflow_body)):  # fmt: skip
            load(url, [body(p) for p in products], clients, min(clients, 4), limit_s)  # warm-up
            run = load(url, [body(p) for p in products], clients, requests * max(1, clients // 4), limit_s)
            rows.append({"server": server, "clients": clients, **summary(run)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def champion_switch(serve_url: str, tracking_uri: str, products: list[dict], duration_s: float) -> dict:
    """8 clients for ``duration_s``; ``champion`` moves to version 2 a third of the way in."""
    bodies = [serve_body(p) for p in products]
    move = threading.Timer(
        duration_s / 3, MlflowClient(tracking_uri).set_registered_model_alias, (NAME, "champion", "2")
    )
    move.start()
    run = load(f"{serve_url}/caption", bodies, 8, MAX_REQUESTS, duration_s)
    move.join()
    by_version: dict[str, int] = {}
    for r in run["results"]:
        by_version[str(r["version"])] = by_version.get(str(r["version"]), 0) + 1
    return {**summary(run), "answered_by_version": by_version}


def replica_kill(serve_url: str, products: list[dict], duration_s: float) -> dict:
    """2 replicas, 8 clients for ``duration_s``; one replica killed a third of the way in; the time until
    a new replica runs beside the survivor."""
    bodies, killed = [serve_body(p) for p in products], {}

    def killer() -> None:
        (killed["name"], before), killed["at"] = kill_one_replica(), time.monotonic()
        while time.monotonic() - killed["at"] < 120:
            alive = alive_replicas()
            if alive - before and replica_count() >= 2:
                break
            time.sleep(0.5)
        killed["replaced_after_s"] = round(time.monotonic() - killed["at"], 1)

    timer = threading.Timer(duration_s / 3, killer)
    timer.start()
    run = load(f"{serve_url}/caption", bodies, 8, MAX_REQUESTS, duration_s, retries=3)
    timer.join()
    while "replaced_after_s" not in killed:
        time.sleep(0.5)
    results = run["results"]
    return {
        **summary(run),
        "lost": sum(r["status"] != 200 for r in results),
        "retried_requests": sum(r["retries"] > 0 for r in results),
        "retries": sum(r["retries"] for r in results),
        "replica_replaced_after_s": killed["replaced_after_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/caponimage@champion")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    parser.add_argument("--dataset", default="data/synthetic")
    parser.add_argument("--requests", type=int, default=32, help="requests per latency run (x clients/4 above 4)")
    parser.add_argument("--limit-s", type=float, default=120.0, help="each latency run stops by then")
    parser.add_argument("--event-s", type=float, default=45.0, help="the switch and kill runs' length")
    parser.add_argument("--out", type=Path, default=Path("docs/serving_bench.json"))
    args = parser.parse_args()
    import ray
    from ray import serve

    ensure_table(args.dataset)
    products = five_box_products(args.dataset, 8)
    folder = Path(tempfile.mkdtemp(prefix="caponimage-serving-bench-"))
    tracking_uri = temporary_registry(args.model, args.tracking_uri, folder, products[0])
    ray.init(address="local", num_cpus=4, include_dashboard=True)  # the state API lists the replicas
    scoring, mlflow_url = start_mlflow_scoring(tracking_uri, folder)
    try:
        serve_url = start_serve(tracking_uri, replicas=1)
        latency = compare(serve_url, mlflow_url, products, args.requests, args.limit_s)
    finally:
        os.killpg(scoring.pid, 15)
    switch = champion_switch(serve_url, tracking_uri, products, args.event_s)
    print("switch", json.dumps(switch), flush=True)
    serve.shutdown()
    MlflowClient(tracking_uri).set_registered_model_alias(NAME, "champion", "1")
    serve_url = start_serve(tracking_uri, replicas=2)
    kill = replica_kill(serve_url, products, args.event_s)
    print("kill", json.dumps(kill), flush=True)
    serve.shutdown()
    ray.shutdown()
    figures = {
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
        "model": args.model,
        "boxes_per_image": BOXES,
        "latency": latency,
        "champion_switch": switch,
        "replica_kill": kill,
    }
    args.out.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
