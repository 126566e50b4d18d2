"""The champion gate against a real MLflow registry, without Ray: a sqlite file, and for the races
also the team's PostgreSQL-backed ``mlflow server`` (tests/servers.py)."""

import math
import os
import uuid

import mlflow
import pytest
from helpers import both_stores, tracking_store
from mlflow.tracking import MlflowClient

from components.serving.registry import CHALLENGER, CHAMPION, Score, register
from components.tracking.registry import Registry

NAME = "caponimage-test"


def echo(model_input: list[str]) -> list[str]:
    return model_input


def score(value, split="val", data="d1", images=10):
    return Score("CIDEr", split, data, images, value)


def test_score_comparison():
    assert score(2.0).beats(score(1.0)) and not score(1.0).beats(score(2.0))
    assert not score(1.0).beats(score(1.0))  # a tie keeps the champion
    assert score(1.0).beats(score(math.nan)) and not score(math.nan).beats(score(1.0))
    assert Score("loss", "val", "d1", 10, 0.5, "min").beats(Score("loss", "val", "d1", 10, 0.7, "min"))
    with pytest.raises(ValueError, match="different terms"):
        score(2.0).beats(score(1.0, data="d2"))
    assert Score.from_tags(score(3.25).tags()) == score(3.25)
    assert Score.from_tags({"score.metric": "CIDEr"}) is None


def _registry(uri: str, artifacts: str | None):
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(f"registry-test-{uuid.uuid4().hex[:8]}", artifacts))
    client = MlflowClient(uri)
    for model in client.search_registered_models(filter_string=f"name LIKE '{NAME}%'"):  # a shared server
        client.delete_registered_model(model.name)

    def new_model() -> tuple[str, str]:
        with mlflow.start_run() as run:
            model = mlflow.pyfunc.log_model(name="model", python_model=echo, pip_requirements=[])
        return model.model_uri, run.info.run_id

    return client, new_model


@pytest.fixture
def registry(tmp_path):
    yield _registry(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"))
    mlflow.set_tracking_uri(None)


@pytest.fixture(params=both_stores())
def racing_registry(request, tmp_path):
    """The registry for the races: on sqlite, and on the team server (its artifacts proxied)."""
    uri = tracking_store(request, tmp_path)
    yield _registry(uri, None if uri.startswith("http") else str(tmp_path / "artifacts"))
    mlflow.set_tracking_uri(None)


def our_models(client) -> list[str]:
    return [m.name for m in client.search_registered_models() if m.name.startswith(NAME)]


def aliases(client):
    return {alias: str(version) for alias, version in client.get_registered_model(NAME).aliases.items()}


def test_champion_moves_only_to_a_better_version(registry):
    client, new_model = registry
    uri, run_id = new_model()
    first = register(Registry(client.tracking_uri, NAME), uri, score(40.0), run_id=run_id, tags={"data_version": "d1"})
    assert (first.version, first.alias, first.champion_before) == ("1", CHAMPION, None)
    version = client.get_model_version(NAME, "1")
    assert version.tags["source_run"] == run_id and version.tags["score.value"] == "40.0"

    worse = add(client, new_model, score(35.0))
    assert worse.alias == CHALLENGER and worse.champion_before.value == 40.0
    assert aliases(client) == {CHAMPION: "1", CHALLENGER: "2"}

    tie = add(client, new_model, score(40.0))
    assert tie.alias == CHALLENGER and aliases(client)[CHAMPION] == "1"

    better = add(client, new_model, score(41.5))
    assert better.alias == CHAMPION and aliases(client)[CHAMPION] == "4"
    assert client.get_model_version(NAME, "1").tags["replaced_by"] == "4"
    assert "41.50 vs champion 40.00" in better.summary()


def add(client, new_model, new_score, **kwargs):
    uri, run_id = new_model()
    return register(Registry(client.tracking_uri, NAME), uri, new_score, run_id=run_id, **kwargs)


def test_a_champion_scored_on_other_data_is_rescored_once(registry):
    client, new_model = registry
    uri, run_id = new_model()
    register(Registry(client.tracking_uri, NAME), uri, score(40.0, data="d1"), run_id=run_id)

    # Without a way to rescore it, the old champion stays: two different measurements never compare.
    kept = add(client, new_model, score(99.0, data="d2"))
    assert kept.alias == CHALLENGER and kept.champion_before is None

    calls = []

    def rescore(version):
        calls.append(str(version.version))
        return 50.0

    lower = add(client, new_model, score(45.0, data="d2"), rescore=rescore)
    assert lower.alias == CHALLENGER and lower.champion_before.value == 50.0 and calls == ["1"]
    higher = add(client, new_model, score(55.0, data="d2"), rescore=rescore)
    assert higher.alias == CHAMPION and calls == ["1"]  # the stored rescore was reused
    assert aliases(client)[CHAMPION] == higher.version


def test_two_registrations_at_once_leave_the_better_one_champion(racing_registry):
    """A sweep and a retrain registering together: A (60) rescores the old champion slowly, and B
    (50) comes in meanwhile. Without the gate B read the old champion (40) too, won against it and
    took the alias from A; with it B waits, then loses to A."""
    import threading
    import time

    client, new_model = racing_registry
    uri, run_id = new_model()
    register(Registry(client.tracking_uri, NAME), uri, score(40.0, data="d1"), run_id=run_id)
    (uri_a, run_a), (uri_b, run_b) = new_model(), new_model()

    def slow_rescore(version):
        time.sleep(1.5)  # B starts while A is inside the gate
        return 40.0

    outcomes = {}

    def registering(label, model_uri, source_run, value, rescore):
        outcomes[label] = register(
            Registry(client.tracking_uri, NAME), model_uri, score(value, data="d2"), run_id=source_run, rescore=rescore
        )

    a = threading.Thread(target=registering, args=("a", uri_a, run_a, 60.0, slow_rescore))
    b = threading.Thread(target=registering, args=("b", uri_b, run_b, 50.0, lambda version: 40.0))
    a.start()
    time.sleep(0.5)
    b.start()
    a.join(30)
    b.join(30)
    assert (outcomes["a"].alias, outcomes["b"].alias) == (CHAMPION, CHALLENGER)
    assert aliases(client) == {CHAMPION: outcomes["a"].version, CHALLENGER: outcomes["b"].version}
    assert outcomes["b"].champion_before.value == 60.0  # B was compared with A, the champion it found
    assert our_models(client) == [NAME]  # the gate's lock is gone


def test_a_gate_left_by_a_killed_process_of_this_machine_is_taken_at_once(registry):
    """A retrain killed inside the gate leaves its lock with an hour's lease: a dead holder on this
    machine is known dead, so the next taker does not wait the hour out; a live holder is waited for."""
    import subprocess
    import time

    from components.processes import this_host
    from components.tracking.registry import GATE_LOCK_SUFFIX, GateBusy

    client, _ = registry
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = f"{NAME}{GATE_LOCK_SUFFIX}0"
    expires = repr(time.time() + 3600)
    client.create_registered_model(lock, tags={"owner": f"{this_host()}:{dead.pid}:abcd", "expires": expires})
    started = time.monotonic()
    with Registry(client.tracking_uri, NAME).gate(wait_s=5) as owner:
        held = client.get_registered_model(f"{NAME}{GATE_LOCK_SUFFIX}1")  # the next generation, ours
        assert held.tags["owner"] == owner and owner.startswith(f"{this_host()}:{os.getpid()}:")
        assert [m.name for m in client.search_registered_models() if m.name != NAME] == [held.name]  # no dead one
    assert time.monotonic() - started < 5
    client.create_registered_model(lock, tags={"owner": f"{this_host()}:1:abcd", "expires": expires})  # pid 1 runs
    with pytest.raises(GateBusy, match="stayed held for 1 s"), Registry(client.tracking_uri, NAME).gate(wait_s=1):
        pass


def test_two_takers_of_an_expired_gate_end_with_exactly_one_holder(racing_registry):
    """Both find the lock expired before either acts (the interleaving forced step by step): both try
    the next generation, the store lets one create it, and the other's stale view deletes nothing."""
    import time

    from components.tracking.registry import GATE_LOCK_SUFFIX

    client, _ = racing_registry
    expired = f"{NAME}{GATE_LOCK_SUFFIX}0"
    client.create_registered_model(expired, tags={"owner": "elsewhere:7:abcd", "expires": repr(time.time() - 1)})
    first, second = Registry(client.tracking_uri, NAME), Registry(client.tracking_uri, NAME)
    seen_by_first, seen_by_second = first.next_lock(), second.next_lock()
    assert seen_by_first == seen_by_second == f"{NAME}{GATE_LOCK_SUFFIX}1"
    assert first.claim(seen_by_first, "first:1:aaaa", 3600.0)
    assert not second.claim(seen_by_second, "second:2:bbbb", 3600.0)
    locks = [client.get_registered_model(name) for name in our_models(client) if name != NAME]
    assert [(m.name, m.tags["owner"]) for m in locks] == [(seen_by_first, "first:1:aaaa")]  # one holder
    assert second.next_lock() is None  # the second waits for the first
    client.delete_registered_model(seen_by_first)  # the first releases
    with second.gate(wait_s=5) as owner:  # and the second takes the gate afresh
        assert client.get_registered_model(f"{NAME}{GATE_LOCK_SUFFIX}0").tags["owner"] == owner
