"""Model sources as users write them, and credentials kept out of logs (no Ray)."""

import pytest

from components.config import TrackingSection
from components.errors import ConfigError
from components.redaction import redact
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


@pytest.mark.parametrize(
    "text,redacted",
    [
        ("http://alice:s3cret@mlflow.internal:5000", "http://***@mlflow.internal:5000"),
        ("postgresql+psycopg2://u:p@db/mlflow", "postgresql+psycopg2://***@db/mlflow"),
        ("s3://u:p@w@host/x", "s3://***@host/x"),  # a password holding "@"
        ("http://u:pa/ss@h/x", "http://***@h/x"),  # a password holding "/"
        ("https://h/x?token=abc&y=1", "https://h/x?token=***&y=1"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Date=20261123&X-Amz-Signature=9f",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Date=20261123&X-Amz-Signature=***",
        ),
        (
            "--set data.dataset=s3://k:s@b/ds and http://h?api_key=z",
            "--set data.dataset=s3://***@b/ds and http://h?api_key=***",
        ),
        ("s3://bucket/path", "s3://bucket/path"),
        ("sqlite:////tmp/m.db", "sqlite:////tmp/m.db"),
        ("s3://bucket/user@example/file.png", "s3://bucket/user@example/file.png"),  # "@" in a path is not a secret
        ("s3://AK:se?cret@host/ds", "s3://***@host/ds"),  # a password holding "?"
        ("s3://AK:se#cr/et@host:9000/ds?x=1", "s3://***@host:9000/ds?x=1"),  # "#" and "/"
        ("https://ghp_abc@github.com/o/r.git", "https://***@github.com/o/r.git"),  # a token as the user
        ("http://[::1]:5000/?a=1", "http://[::1]:5000/?a=1"),
        ("https://app/cb#access_token=ey.J&state=1", "https://app/cb#access_token=***&state=1"),
        ("https://app/cb?code=1#id_token=ey", "https://app/cb?code=1#id_token=***"),
    ],
)
def test_credentials_in_uris_are_redacted_before_logging(text, redacted):
    assert redact(text) == redacted


def test_an_empty_registry_says_what_to_run(tmp_path):
    from components.serving.captioning import load_captioning_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for load in (
        lambda: load_captioning_model("models:/caponimage@champion", uri),
        lambda: ModelSource.parse("models:/caponimage@champion").checkpoint_folder(uri),
    ):
        with pytest.raises(ConfigError, match="model': no model is registered as 'caponimage' at sqlite.*make run"):
            load()


def test_errors_and_log_lines_never_show_credentials(capsys, caplog):
    import logging

    from components.cli import run
    from components.errors import ConfigError

    def failing(argv):
        logging.getLogger("components.test").warning("reading %s", "s3://key:secret@bucket/ds?X-Amz-Signature=abc")
        raise ConfigError("data.dataset", "s3://key:secret@bucket/ds is not a dataset folder")

    assert run(failing, []) == 2
    err = capsys.readouterr().err
    assert "secret" not in err and "abc" not in err
    assert "reading s3://***@bucket/ds?X-Amz-Signature=***" in caplog.text and "secret" not in caplog.text
    assert "error: config key 'data.dataset': s3://***@bucket/ds is not a dataset folder" in err


def test_steps_trained_again_after_a_restart_are_logged_once(tmp_path):
    from mlflow.tracking import MlflowClient

    from components.tracking.callback import MlflowReportCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("callback", str(tmp_path / "a"))).info.run_id
    callback = MlflowReportCallback(uri, run_id)
    for step, loss in [(2, 5.0), (4, 4.0), (6, 3.0), (8, 2.5), (8, 2.4), (10, 2.0)]:  # a restart from step 6
        callback.after_report(
            None, [{"step": step, "loss_generation": loss, "resumed_from": 6.0 if loss < 2.5 else 0}], None
        )
    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "loss_generation")]
    assert sorted(history) == [(2, 5.0), (4, 4.0), (6, 3.0), (8, 2.5), (10, 2.0)]
    assert client.get_run(run_id).data.tags["resumed_from_step"] == "6"
    again = MlflowReportCallback(uri, run_id)  # a later fit continuing the same run reads what it has
    again.after_report(None, [{"step": 10, "loss_generation": 9.0}], None)
    again.after_report(None, [{"step": 12, "loss_generation": 1.5}], None)
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss_generation"))
    assert history[-2:] == [(10, 2.0), (12, 1.5)]


def test_the_logged_model_behind_each_kind_of_source(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.tracking.sources import logged_model_id

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("sources", str(tmp_path / "artifacts")))
    with mlflow.start_run() as run:
        model = mlflow.pyfunc.log_model(name="model", python_model=lambda inputs: inputs, pip_requirements=[])
    mlflow.register_model(model.model_uri, "caponimage")
    MlflowClient(uri).set_registered_model_alias("caponimage", "champion", "1")
    mlflow.set_tracking_uri(None)
    run_id, model_id = run.info.run_id, model.model_id
    for source in (run_id, f"runs:/{run_id}/model", "models:/caponimage/1", "models:/caponimage@champion"):
        assert logged_model_id(source, uri) == model_id, source
    assert logged_model_id(f"models:/{model_id}", uri) == model_id
    assert logged_model_id(str(tmp_path), uri) is None and logged_model_id(None, uri) is None  # a folder
    assert logged_model_id("models:/caponimage@challenger", uri) is None  # no such alias
