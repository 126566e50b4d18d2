"""The retrain's last stage against a real MLflow registry (a sqlite file, and the team's
PostgreSQL-backed mlflow server), without Ray: the candidate is
registered once per run key, compared with whoever holds `champion` when the alias is read again,
and the alias moves last. The two evaluations are stand-ins that return fixed predictions."""

import uuid
from types import SimpleNamespace

import mlflow
import pytest
from helpers import both_stores, tracking_store
from mlflow.tracking import MlflowClient

from components.config import load_job_config
from components.evaluation.tracked_evaluation import Evaluated
from components.retraining.driver import RUN_KEY_TAG, Retrain
from components.retraining.state import Pending

REFERENCES = ["保温杯", "大容量", "真空隔热", "轻便携带", "不锈钢", "防漏设计", "一键开盖", "长效保温"] * 3


def echo(model_input: list[str]) -> list[str]:
    return model_input


def evaluated(predictions: list[str]) -> Evaluated:
    rows = [
        {"image_id": f"i{n // 2}", "box": n % 2, "reference": ref, "prediction": pred}
        for n, (pred, ref) in enumerate(zip(predictions, REFERENCES, strict=True))
    ]
    right = sum(p == r for p, r in zip(predictions, REFERENCES, strict=True)) / len(REFERENCES)
    scores = {"BLEU@1": 100 * right, "BLEU@4": 100 * right, "METEOR": 0.0, "CIDEr": 1000 * right}
    report = SimpleNamespace(
        images=len(REFERENCES) // 2,
        scores=scores,
        generated_diversity={"Div@1": 50.0, "Div@2": 40.0},
        metrics=lambda: {"CIDEr": scores["CIDEr"]},
        publishing={},  # scored without the publishing checks: their guardrail has nothing to compare
    )
    return Evaluated(report, "eval-run", rows)


PERFECT = evaluated(REFERENCES)
HALF = evaluated([r if n % 2 else "毛巾" for n, r in enumerate(REFERENCES)])
WRONG = evaluated(["毛巾"] * len(REFERENCES))


class StandInRetrain(Retrain):
    """Evaluations answer from a table; evaluating ``move_on`` first moves `champion` (a sweep meanwhile)."""

    def __init__(self, *args, answers, move_on=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.answers, self.move_on, self.evaluated = answers, move_on, []

    def evaluate(self, source, role):
        self.evaluated.append(role)
        self.scoring_mode = "char"
        if self.move_on is not None and role == f"champion-v{self.move_on[0]}":
            self.registry.client.set_registered_model_alias(self.name, "champion", self.move_on[1])
            self.move_on = None
        return self.answers[role]


@pytest.fixture(params=both_stores())
def registry(request, tmp_path, tiny_dataset):
    uri = tracking_store(request, tmp_path)
    key = uuid.uuid4().hex[:8]  # the team server is shared by the session's tests
    artifacts = None if uri.startswith("http") else str(tmp_path / "artifacts")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(f"retrain-test-{key}", artifacts))
    client = MlflowClient(uri)
    flags = [f"tracking.tracking_uri={uri}", f"data.dataset={tiny_dataset[0]}", f"tracking.registered_model=cap-{key}"]
    job = load_job_config("tiny", flags, task="retrain")

    def logged_model() -> str:
        with mlflow.start_run() as run:
            mlflow.pyfunc.log_model(name="model", python_model=echo, pip_requirements=[])
        return run.info.run_id

    for _ in range(2):  # versions 1 (champion) and 2
        mlflow.register_model(f"runs:/{logged_model()}/model", job.tracking.registered_model)
    client.set_registered_model_alias(job.tracking.registered_model, "champion", "1")
    yield client, job, logged_model
    mlflow.set_tracking_uri(None)


def retrain(registry, answers, move_on=None):
    client, job, logged_model = registry
    candidate = logged_model()
    with mlflow.start_run() as parent:
        pending = Pending("key1", {"p": "k"}, "1", parent.info.run_id, stage="trained", candidate_run_id=candidate)
        lock = SimpleNamespace(lost=False)
        stage = StandInRetrain(job, "crawls", pending, lock, answers=answers, move_on=move_on)
        stage.compare_and_register()
    aliases = client.get_registered_model(job.tracking.registered_model).aliases
    return stage, {alias: str(version) for alias, version in aliases.items()}


def test_a_clearly_better_candidate_is_registered_then_promoted(registry):
    client, name = registry[0], registry[1].tracking.registered_model
    stage, aliases = retrain(registry, {"candidate": PERFECT, "champion-v1": WRONG})
    assert stage.evaluated == ["candidate", "champion-v1"]
    assert aliases["champion"] == "3" and stage.pending.registered_version == "3"
    tags = client.get_model_version(name, "3").tags
    assert tags[RUN_KEY_TAG] == "key1" and tags["retrain_decision"] == "promote"
    assert client.get_model_version(name, "1").tags["replaced_by"] == "3"


def test_when_the_champion_moves_meanwhile_the_candidate_faces_the_new_holder(registry):
    answers = {"candidate": HALF, "champion-v1": WRONG, "champion-v2": PERFECT}
    stage, aliases = retrain(registry, answers, move_on=("1", "2"))
    assert stage.evaluated == ["candidate", "champion-v1", "champion-v2"]
    assert aliases["champion"] == "2" and aliases["challenger"] == "3"  # it beat v1, not v2
    client, name = registry[0], registry[1].tracking.registered_model
    tags = client.get_model_version(name, "3").tags
    assert tags["retrain_compared_with"] == "2" and tags["retrain_decision"] == "keep_champion"
    versions = client.search_model_versions(f"name = '{name}'")
    assert len([v for v in versions if v.tags.get(RUN_KEY_TAG) == "key1"]) == 1  # registered once
