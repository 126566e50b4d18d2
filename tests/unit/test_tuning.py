"""The sweep's pure parts without Ray: search space, validation, overrides, concurrency, table, plot."""

import math
from types import SimpleNamespace

import pytest

from components.config import check_space, load_job_config, trial_job, trial_overrides
from components.errors import ConfigError
from components.training.tuning import concurrency, search_space, sweep_figure, sweep_rows, trial_resources


def test_presets_sweep_figure_4s_dimensions():
    space = load_job_config("small").tune.space
    assert {"model.n_layers", "model.d_model", "model.grid", "train.lr"} <= set(space)
    assert load_job_config("paper").tune.space["model.grid"] == [6, 8, 10]
    for preset in ("tiny", "small", "paper", "ablation"):
        check_space(load_job_config(preset))


def test_set_adds_a_dimension_with_dotted_keys():
    job = load_job_config(
        "small", ["tune.space.model.ffn_mult=[2, 4]", "tune.space.train.lr={uniform: [0.001, 0.002]}"]
    )
    assert job.tune.space["model.ffn_mult"] == [2, 4]
    assert job.tune.space["train.lr"] == {"uniform": [0.001, 0.002]}
    assert job.tune.space["model.n_layers"] == [2, 3]  # the preset's dimensions stay


@pytest.mark.parametrize(
    "override,key,message",
    [
        ("tune.space.model.depth=[2, 3]", "tune.space.model.depth", "not a tunable key"),
        ("tune.space.train.steps=[10, 20]", "tune.space.train.steps", "not a tunable key"),
        ("tune.space.ray.num_workers=[1, 2]", "tune.space.ray.num_workers", "not a tunable key"),
        ("tune.space.model.d_model=[128, 130]", "tune.space.model.n_heads", "must divide d_model"),
        ("tune.space.train.lr=[0.001, -1]", "tune.space.train.lr", "must be positive"),
    ],
)
def test_a_bad_dimension_is_named_before_any_work(override, key, message):
    job = load_job_config("small", [override])
    with pytest.raises(ConfigError, match=message) as raised:
        check_space(job)
    assert raised.value.key == key


@pytest.mark.parametrize(
    "override,message",
    [
        ("tune.space.train.lr={loguniform: [0, 0.1]}", "positive low end"),
        ("tune.space.train.lr={uniform: [0.2, 0.1]}", "low < high"),
        ("tune.space.train.lr={normal: [0, 1]}", "one of"),
        ("tune.space.model.grid=[]", "empty list"),
        ("tune.mode=maximum", "'min' or 'max'"),
        ("tune.reduction_factor=1", "at least 2"),
    ],
)
def test_bad_sweep_settings_fail_when_the_config_is_read(override, message):
    with pytest.raises(ConfigError, match=message):
        load_job_config("small", [override])


def test_a_trial_is_the_job_with_its_sampled_values():
    job = load_job_config("small")
    sampled = {"model.n_layers": 2, "model.d_model": 128, "train.lr": 1e-3}
    assert trial_overrides(sampled) == {"model": {"n_layers": 2, "d_model": 128}, "train": {"lr": 1e-3}}
    trial = trial_job(job, sampled)
    assert (trial.model.n_layers, trial.model.d_model, trial.train.lr) == (2, 128, 1e-3)
    assert trial.train.steps == job.train.steps and trial.model.grid == job.model.grid


def test_search_space_maps_each_distribution():
    from ray.tune.search.sample import Categorical, Float, Integer

    space = search_space(
        {
            "model.n_layers": [2, 3],
            "model.grid": {"grid": [2, 4]},
            "train.lr": {"loguniform": [1e-4, 1e-2]},
            "train.warmup_steps": {"randint": [10, 20]},
        }
    )
    assert isinstance(space["model.n_layers"], Categorical) and space["model.n_layers"].categories == [2, 3]
    assert space["model.grid"] == {"grid_search": [2, 4]}
    assert isinstance(space["train.lr"], Float) and (space["train.lr"].lower, space["train.lr"].upper) == (1e-4, 1e-2)
    assert isinstance(space["train.warmup_steps"], Integer)


def test_concurrency_is_what_the_cluster_holds():
    laptop = load_job_config("small", ["ray.num_workers=1", "ray.cpus_per_worker=1.0"])
    assert trial_resources(laptop) == {"CPU": 2.0, "GPU": 0.0}  # a worker + two half-CPU decoding actors
    assert concurrency(laptop, {"CPU": 4.0}) == 2
    assert concurrency(laptop, {"CPU": 1.0}) == 1  # never zero
    gpus = load_job_config("paper", ["ray.num_workers=8"])  # 8 GPU workers of 4 CPUs, 16 decoding actors
    assert concurrency(gpus, {"CPU": 128.0, "GPU": 16.0}) == 2
    assert concurrency(gpus, {"CPU": 64.0, "GPU": 64.0}) == 1  # CPUs bind first
    assert concurrency(load_job_config("small", ["tune.max_concurrent=3"]), {"CPU": 1.0}) == 3


def _result(config, metrics, error=None):
    return SimpleNamespace(config=config, metrics=metrics, error=error)


def test_sweep_table_and_plot():
    results = [
        _result({"model.n_layers": 2, "train.lr": 1e-3}, {"val_subset/CIDEr": 40.0, "step": 300, "mlflow_run_id": "a"}),
        _result({"model.n_layers": 3, "train.lr": 3e-4}, {"val_subset/CIDEr": 25.0, "step": 150, "mlflow_run_id": "b"}),
        _result({"model.n_layers": 3, "train.lr": 2e-3}, {}, error=RuntimeError("\nboom\nTraceback (most recent)")),
    ]
    rows = sweep_rows(results, ["model.n_layers", "train.lr"], "val_subset/CIDEr")
    assert [r["step"] for r in rows] == [300, 150, 0]
    assert rows[0]["mlflow_run_id"] == "a" and math.isnan(rows[2]["val_subset/CIDEr"])
    assert rows[2]["error"] == "RuntimeError: boom"  # the message's first line, not the traceback
    figure = sweep_figure(rows, ["model.n_layers", "train.lr"], "val_subset/CIDEr")
    panels = figure.axes
    assert len(panels) == 2 and panels[1].get_xscale() == "log"
    assert len(panels[0].collections[0].get_offsets()) == 2  # the failed trial has no point


def test_runs_of_stopped_trials_are_closed_as_killed(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from components.training.tuning import close_stopped_runs, stopped_early

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("sweep")
    parent = client.create_run(experiment).info.run_id
    tags = {"mlflow.parentRunId": parent}
    finished, running, failed, crashed = (client.create_run(experiment, tags=tags).info.run_id for _ in range(4))
    client.set_terminated(finished, "FINISHED")
    client.set_terminated(failed, "FAILED")  # Tune's SIGTERM landed inside the run
    other = client.create_run(experiment).info.run_id  # running, but not this sweep's
    results = [
        SimpleNamespace(metrics={"mlflow_run_id": finished, "step": 12}, config={}, error=None),
        SimpleNamespace(metrics={"mlflow_run_id": running, "step": 6}, config={}, error=None),
        SimpleNamespace(metrics={"mlflow_run_id": failed, "step": 6}, config={}, error=None),
        SimpleNamespace(metrics={"mlflow_run_id": crashed, "step": 6}, config={}, error=RuntimeError("oom")),
        SimpleNamespace(metrics={"mlflow_run_id": "longer", "step": 12}, config={"train.steps": 24}, error=None),
    ]
    assert stopped_early(results, 12) == {running: 6, failed: 6, "longer": 12}
    assert close_stopped_runs(uri, parent, results[:4], 12) == 2
    for run_id in (running, failed):
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and run.data.tags["stopped_by"] == "ASHA"
        assert run.data.tags["stopped_at_step"] == "6"
    assert client.get_run(crashed).info.status == "FAILED" and "stopped_by" not in client.get_run(crashed).data.tags
    assert client.get_run(finished).info.status == "FINISHED" and client.get_run(other).info.status == "RUNNING"
    assert mlflow.get_tracking_uri() != uri  # nothing global was changed
