"""Model sources as users write them, and credentials kept out of logs (no Ray)."""

import pytest

from components.config import TrackingSection
from components.errors import ConfigError
from components.storage import redact
from components.tracking.sources import ModelSource

RUN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "text,kind,run_id,is_model",
    [
        (RUN, "run", RUN, False),
        (f"runs:/{RUN}", "run", RUN, False),
        (f"runs:/{RUN}/model", "logged_model", RUN, True),
        ("models:/caponimage@champion", "registered_model", None, True),
        ("models:/caponimage/3", "registered_model", None, True),
        ("s3://bucket/ray/pretrain-x/checkpoint_00000300", "uri", None, False),
        ("latest", "latest", None, False),
    ],
)
def test_one_parser_for_every_model_source(text, kind, run_id, is_model):
    source = ModelSource.parse(text)
    assert (source.kind, source.run_id, source.is_mlflow_model, source.text) == (kind, run_id, is_model, text)


def test_a_local_source_must_be_a_folder_and_errors_name_the_option(tmp_path):
    assert ModelSource.parse(str(tmp_path)).kind == "folder"
    assert ModelSource.parse(str(tmp_path)).checkpoint_folder("sqlite:///unused.db") == str(tmp_path)
    with pytest.raises(ConfigError, match="^option '--init-from': .*nowhere is not a model URI, an MLflow run id"):
        ModelSource.parse(str(tmp_path / "nowhere"), key="--init-from")
    with pytest.raises(ConfigError, match="^config key 'model': runs:/abc/model: a runs:/ URI starts with a 32"):
        ModelSource.parse("runs:/abc/model")
    with pytest.raises(ValueError, match="resolve 'latest'"):
        ModelSource.parse("latest").checkpoint_folder("sqlite:///unused.db")


def test_latest_without_a_finished_run_says_what_is_missing(tmp_path):
    tracking = TrackingSection(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="empty")
    with pytest.raises(ConfigError, match="'init_from': no finished pretrain run in experiment 'empty'"):
        ModelSource.resolve("latest", tracking, latest_of="pretrain", key="init_from")
    assert ModelSource.resolve(RUN, tracking, latest_of="pretrain").run_id == RUN  # nothing looked up


def test_a_run_without_a_checkpoint_is_a_config_error(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("x", artifact_location=str(tmp_path / "a"))).info.run_id
    with pytest.raises(ConfigError, match=f"'model': run {run_id} has no logged model and no 'checkpoint' artifact"):
        ModelSource.parse(run_id).checkpoint_folder(uri)


def test_credentials_in_uris_are_redacted_before_logging():
    assert redact("http://alice:s3cret@mlflow.internal:5000") == "http://***@mlflow.internal:5000"
    assert redact("postgresql+psycopg2://u:p@db/mlflow") == "postgresql+psycopg2://***@db/mlflow"
    assert redact("s3://bucket/path") == "s3://bucket/path" and redact("sqlite:////tmp/m.db") == "sqlite:////tmp/m.db"


def test_an_empty_registry_says_what_to_run(tmp_path):
    from components.serving.captioning import load_captioning_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for load in (
        lambda: load_captioning_model("models:/caponimage@champion", uri),
        lambda: ModelSource.parse("models:/caponimage@champion").checkpoint_folder(uri),
    ):
        with pytest.raises(ConfigError, match="model': no model is registered as 'caponimage' at sqlite.*make run"):
            load()
