"""The online model follows the registry (a real sqlite registry, the loading stood in): a moved alias
is loaded and swapped in, a version that fails to load leaves the old one answering."""

import pytest
from mlflow.tracking import MlflowClient

from components.serving.follower import ModelFollower

NAME = "caponimage"


@pytest.fixture
def registry(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_registered_model(NAME)
    for _ in range(3):
        client.create_model_version(NAME, source=str(tmp_path / "model"))
    return uri, client


class Loads:
    def __init__(self, broken=()):
        self.calls, self.broken = [], set(broken)

    def __call__(self, text, tracking_uri):
        self.calls.append(text)
        if text in self.broken:
            raise OSError(f"{text}: artifacts missing")
        return f"model of {text}"


def test_a_moved_alias_is_loaded_once_and_swapped_in(registry):
    uri, client = registry
    client.set_registered_model_alias(NAME, "champion", "1")
    loads = Loads()
    follower = ModelFollower(f"models:/{NAME}@champion", uri, loads)
    assert follower.follows and follower.refresh() and follower.current().version == "1"
    before = follower.current()
    assert not follower.refresh() and follower.current() is before  # nothing moved: nothing loaded
    client.set_registered_model_alias(NAME, "champion", "2")
    assert follower.refresh()
    assert (follower.current().version, follower.current().model) == ("2", f"model of models:/{NAME}/2")
    assert before.version == "1"  # a request that took the old one keeps it whole
    assert loads.calls == [f"models:/{NAME}/1", f"models:/{NAME}/2"]


def test_a_version_that_does_not_load_leaves_the_old_one_answering_and_is_not_retried(registry):
    uri, client = registry
    client.set_registered_model_alias(NAME, "champion", "1")
    loads = Loads(broken={f"models:/{NAME}/3"})
    follower = ModelFollower(f"models:/{NAME}@champion", uri, loads)
    follower.refresh()
    client.set_registered_model_alias(NAME, "champion", "3")
    assert not follower.refresh() and not follower.refresh()
    assert follower.current().version == "1" and loads.calls.count(f"models:/{NAME}/3") == 1
    client.delete_registered_model_alias(NAME, "champion")  # the alias gone a while: keep answering
    assert not follower.refresh() and follower.current().version == "1"


def test_an_unset_alias_fails_the_start_and_a_pinned_version_never_moves(registry):
    uri, client = registry
    with pytest.raises(LookupError, match="no version of 'caponimage' has the alias 'champion'"):
        ModelFollower(f"models:/{NAME}@champion", uri, Loads()).refresh()
    pinned = ModelFollower(f"models:/{NAME}/2", uri, Loads())
    assert not pinned.follows and pinned.refresh() and pinned.current().version == "2"
    assert pinned.registered_name() == NAME and not pinned.refresh()
