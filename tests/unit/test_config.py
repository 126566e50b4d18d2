"""The job configuration: strict types, ranges and names, before any work starts (no Ray, no MLflow)."""

import math

import pytest
import yaml
from helpers import load_flow

from components.config import JobConfig, ModelConfig, config_yaml, load_job_config, parse_override
from components.data.prepare import prepare_data
from components.errors import ConfigError


def test_config_round_trip_and_overrides():
    job = load_job_config("small", ["train.lr=1e-4", "model.d_model=128", "train.generation_per_matching=[1, 0]"])
    assert job.train.lr == 1e-4 and job.model.d_model == 128 and job.train.generation_per_matching == (1, 0)
    assert JobConfig.from_dict(job.as_dict()) == job
    assert job.flat()["train.lr"] == 1e-4 and "model.grid" in job.flat()
    assert parse_override("train.steps=20") == (["train", "steps"], 20)


@pytest.mark.parametrize(
    "override,key,message",
    [
        ("train.lrr=0.1", "train.lrr", "unknown key"),
        ("train.lr=-0.001", "train.lr", "must be positive"),
        ("model.depth=3", "model.depth", "unknown key"),
        ("ray.num_workers=0", "ray.num_workers", "must be positive"),
        ("train.negatives=hardest", "train.negatives", "must be one of"),
        ("train.steps=many", "train.steps", "expected int"),
        ("colour=red", "colour", "unknown key"),
        ("train.compile=true", "train.box_bucket", "train.compile needs static shapes"),
    ],
)
def test_bad_config_names_the_key(override, key, message):
    with pytest.raises(ConfigError) as err:
        load_job_config("tiny", [override])
    assert f"config key '{key}'" in str(err.value) and message in str(err.value)


def test_finetune_needs_a_starting_point():
    with pytest.raises(ConfigError, match="init_from"):
        load_job_config("tiny", task="finetune")


def test_a_dataset_the_user_names_must_exist(tmp_path):
    job = load_job_config("tiny", [f"data.dataset={tmp_path / 'typo'}"])
    assert job.data.build_if_missing is False
    with pytest.raises(ConfigError, match="data.dataset"):
        prepare_data(job)
    assert not (tmp_path / "typo").exists()


# Values that the configuration used to let through, each to a clear error naming its key.
@pytest.mark.parametrize(
    "override,key,message",
    [
        ("train.steps=true", "train.steps", "expected int (got True)"),  # once ran 1 step
        ("model.n_layers=2.5", "model.n_layers", "expected int (got 2.5)"),  # once failed inside a Ray worker
        ("model.grid=3.5", "model.grid", "expected int (got 3.5)"),
        ("model.grid=4.0", "model.grid", "expected int"),  # no float for an int, even a whole one
        ("train.lr=.inf", "train.lr", "must be a finite number"),  # once "finished" with NaN losses
        ("train.lr=.nan", "train.lr", "must be a finite number"),
        ("train.betas=[0.9]", "train.betas", "expected two values"),
        ("train.betas=[0.9, true]", "train.betas[1]", "expected a number"),
        ("model.use_image=0", "model.use_image", "expected true or false"),
        ("data.images_root=123", "data.images_root", "expected a string"),
        ("train.fail_at_step=-3", "train.fail_at_step", "must be positive"),
        ("train.generation_per_matching=[0, 0]", "train.generation_per_matching", "not both 0"),
        ("train.positive_rate=1.5", "train.positive_rate", "at most 1"),
        ("model.d_model=130", "model.n_heads", "must divide d_model"),
        ("model.d_model=63", "model.d_model", "even"),
        ("data.synthetic_lang=fr", "data.synthetic_lang", "must be one of 'zh' or 'en'"),
        ("tracking.gate_metric=ROUGE", "tracking.gate_metric", "must be one of BLEU@1"),
        ("tracking.experiment=''", "tracking.experiment", "must not be empty"),
        ("model=3", "model", "must be a mapping"),
        ("model.preset=huge", "model.preset", "unknown preset 'huge'"),
        ("train.lr.peak=1", "train.lr.peak", "'lr' is not a section"),
        ("train.lr", "train.lr", "section.key=value"),
        ("ingest.max_chars=1", "ingest.max_chars", "at least min_chars 2"),
        ("ingest.near_duplicate_share=1.5", "ingest.near_duplicate_share", "at most 1"),
        ("ingest.actors=0", "ingest.actors", "must be positive"),
        ("retrain.bootstrap_samples=1", "retrain.bootstrap_samples", "at least 200 (got 1): fewer resamples"),
        ("retrain.lock_lease_s=1", "retrain.lock_lease_s", "at least 60 (got 1): the holder renews"),
        ("ingest.short_side=100000", "ingest.short_side", "at most 4096 (got 100000): the model reads"),
        ("train.images_per_batch=1000", "train.images_per_batch", "at most 512 (got 1000): per worker"),
        ("publish.checks=[read_back]", "publish.checks", "read_back needs fit"),
        ("publish.checks=[spelling]", "publish.checks[0]", "must be one of 'compliance'"),
        ("publish.checks=fit", "publish.checks", "expected a list of checks"),
        ("publish.candidates=17", "publish.candidates", "at most 16 (got 17): wider beams"),
        ("publish.min_contrast=30", "publish.min_contrast", "at most 21"),
        ("retrain.max_violation_rise=2", "retrain.max_violation_rise", "at most 1"),
    ],
)
def test_config_holes_are_closed(override, key, message):
    with pytest.raises(ConfigError) as err:
        load_job_config("tiny", [override])
    assert err.value.key == key and message in str(err.value), str(err.value)
    assert ConfigError.exit_code == 2


def test_yaml_exponents_are_numbers_and_ints_are_floats_where_floats_are_meant():
    job = load_job_config("tiny", ["train.lr=3e-4", "train.backbone_lr=0", "ray.cpus_per_worker=2"])
    assert job.train.lr == 3e-4 and isinstance(job.train.backbone_lr, float) and job.ray.cpus_per_worker == 2.0
    assert parse_override("train.eps=1E-9") == (["train", "eps"], 1e-9)
    assert parse_override("ray.run_name=nightly") == (["ray", "run_name"], "nightly")


def test_the_model_config_refuses_bad_values_when_built_directly():
    with pytest.raises(ConfigError, match="'model.grid': expected int"):
        ModelConfig(grid=True)
    with pytest.raises(ConfigError, match="'model.dropout': must be in \\[0, 1\\)"):
        ModelConfig(dropout=1.0)
    assert ModelConfig(d_model=64, n_heads=4).with_overrides(d_model=128).d_model == 128
    with pytest.raises(ConfigError, match="'model.n_heads'"):
        ModelConfig(d_model=64, n_heads=4).with_overrides(n_heads=5)


def test_a_config_file_must_be_a_readable_mapping(tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- train\n- model\n", "utf-8")
    with pytest.raises(ConfigError, match="'config': .*must hold a mapping of sections, not a list"):
        load_job_config("tiny", config_file=str(listed))
    with pytest.raises(ConfigError, match="'config': .*absent.yaml: no such file"):
        load_job_config("tiny", config_file=str(tmp_path / "absent.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: {steps: 3\n", "utf-8")
    with pytest.raises(ConfigError, match="'config': cannot read YAML"):
        load_job_config("tiny", config_file=str(broken))
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  lr: 2e-4\n  steps: 7\ndata:\n  dataset: elsewhere\n", "utf-8")
    job = load_job_config("tiny", ["train.steps=9"], config_file=str(good))
    assert (job.train.lr, job.train.steps, job.train.warmup_steps) == (2e-4, 9, 2)  # preset < file < --set
    assert job.data.build_if_missing is False  # the file names a dataset: it must exist


def test_print_config_shows_the_resolved_config_and_reads_back(capsys, tmp_path):
    with pytest.raises(SystemExit) as done:
        load_flow("pretrain").main(["--preset", "tiny", "--set", "train.steps=5", "--print-config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    values = yaml.safe_load(printed)
    assert values["train"]["steps"] == 5 and values["model"]["d_model"] == 64
    job = JobConfig.from_dict(values)
    assert job.train.betas == (0.9, 0.98) and job.data.dataset.startswith("/")  # locations resolved
    assert config_yaml(job.with_overrides(tracking={"tracking_uri": "http://u:secret@host"})).count("secret") == 0
    (tmp_path / "printed.yaml").write_text(printed, "utf-8")
    assert load_job_config("tiny", config_file=str(tmp_path / "printed.yaml")) == job  # a config file again


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        load_flow("pretrain").main(["--help"])
    text = capsys.readouterr().out
    assert "configuration preset (default: small)" in text and "--print-config" in text
    assert math.isfinite(load_job_config("paper").train.lr)


def test_mlflow_variables_are_the_default_and_explicit_settings_win(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "retrain-nightly")
    job = load_job_config("paper")  # the preset names a server of its own: the environment beats it
    assert (job.tracking.tracking_uri, job.tracking.experiment) == ("http://mlflow.internal:5000", "retrain-nightly")
    assert load_job_config("tiny", ["tracking.tracking_uri=sqlite:///x.db"]).tracking.tracking_uri == "sqlite:///x.db"
    config = tmp_path / "job.yaml"
    config.write_text("tracking:\n  experiment: mine\n", "utf-8")
    job = load_job_config("tiny", config_file=str(config))
    assert (job.tracking.tracking_uri, job.tracking.experiment) == ("http://mlflow.internal:5000", "mine")


def test_a_relative_store_under_ray_job_submit_is_named(monkeypatch, caplog):
    from components.config import resolve_locations

    job = load_job_config("tiny")
    resolve_locations(job)
    assert "temporary working directory" not in caplog.text  # a local run: the relative path is the user's
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")  # what `ray job submit` sets for its entrypoint
    resolve_locations(job)
    assert "tracking.tracking_uri is sqlite:///" in caplog.text and "ray.storage_path" in caplog.text
    assert "are lost when the cluster goes" in caplog.text
    caplog.clear()
    resolve_locations(load_job_config("tiny", ["tracking.tracking_uri=http://h:5000", "ray.storage_path=s3://b/r"]))
    assert "temporary" not in caplog.text


def test_resuming_a_run_name_with_another_model_names_the_keys(tmp_path):
    import json

    from components.training.tracked_fit import check_resumable

    job = load_job_config("tiny", [f"ray.storage_path={tmp_path}"])
    check_resumable(job, "fresh")  # no checkpoints: a new run
    saved = tmp_path / "pretrain-x" / "checkpoint_00000006"
    saved.mkdir(parents=True)
    (saved / "config.json").write_text(json.dumps({"model": job.model.as_dict()}))
    check_resumable(job, "pretrain-x")  # the same model resumes
    wider = load_job_config("tiny", [f"ray.storage_path={tmp_path}", "model.d_model=128", "model.n_layers=3"])
    with pytest.raises(ConfigError, match="ray.run_name") as refused:
        check_resumable(wider, "pretrain-x")
    assert "model.d_model: 64 in checkpoint_00000006, 128 now; model.n_layers: 2 in checkpoint_00000006, 3 now" in str(
        refused.value
    )


def test_the_paper_preset_trains_the_papers_global_batch_on_one_fast_gpu():
    train, ray = load_job_config("paper").train, load_job_config("paper").ray
    assert ray.num_workers * train.images_per_batch == 80 and ray.use_gpu  # 8 GPUs x 10 images in the paper
    assert train.compile and train.box_bucket > 0 and train.fused_adam and train.tf32 and train.pin_memory
    plain = load_job_config("small").train
    assert not (plain.compile or plain.box_bucket or plain.fused_adam or plain.channels_last)  # CPU: as before


def test_the_default_job_copies_from_the_info_and_the_paper_and_study_presets_do_not():
    assert load_job_config("small").model.copy_from_info is True  # make run: brands copied (docs/model.md)
    assert load_job_config("paper").model.copy_from_info is False  # the paper's model
    assert load_job_config("ablation").model.copy_from_info is False  # the study compares the paper's model
    assert load_job_config("small", ["model.copy_from_info=false"]).model.copy_from_info is False
