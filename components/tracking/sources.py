"""Where a model comes from, as a user writes it: the one parser every flow uses.

    latest                                  the newest finished run of a task (the flow says which)
    0123...cdef (a 32-character run id)     an MLflow run: its ``checkpoint`` artifact
    runs:/<run id>                          the same
    runs:/<run id>/<path>                   a model logged in that run (the pyfunc model)
    models:/<name>@<alias>, models:/<name>/<version>
                                            a registered model version
    s3://bucket/.../checkpoint_00001000     a checkpoint folder behind any URI pyarrow opens
    /path/to/checkpoint                     a local checkpoint folder

Every source resolves to a local checkpoint folder (``model.checkpoint`` format), downloaded if
remote. A source that is none of these is a ``ConfigError`` naming the option it came from.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components import storage
from components.config import TrackingSection
from components.errors import ConfigError
from components.model.checkpoint import CHECKPOINT_ARTIFACT, LoadedCheckpoint, load_checkpoint
from components.redaction import redact
from components.tracking.runs import latest_run_id

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
SourceKind = Literal["latest", "run", "logged_model", "registered_model", "uri", "folder"]


@dataclass(frozen=True)
class ModelSource:
    text: str
    kind: SourceKind
    run_id: str | None = None  # the MLflow run the model came from, when the text names it
    key: str = field(default="model", compare=False)  # the option it was given as, for error messages

    @classmethod
    def parse(cls, text: str, key: str = "model") -> ModelSource:
        text = text.strip()
        if text == "latest":
            return cls(text, "latest", key=key)
        if RUN_ID.match(text):
            return cls(text, "run", text, key)
        if text.startswith("runs:/"):
            run_id, _, path = text.removeprefix("runs:/").partition("/")
            if not RUN_ID.match(run_id):
                raise ConfigError(key, f"{text}: a runs:/ URI starts with a 32-character run id")
            return cls(text, "logged_model" if path.strip("/") else "run", run_id, key)
        if text.startswith("models:/"):
            return cls(text, "registered_model", key=key)
        if storage.is_uri(text):
            return cls(text, "uri", key=key)
        if Path(text.removeprefix("file://")).expanduser().is_dir():
            return cls(text, "folder", key=key)
        raise ConfigError(key, f"{text} is not a model URI, an MLflow run id or a checkpoint folder")

    @classmethod
    def resolve(cls, text: str, tracking: TrackingSection, *, latest_of: str, key: str = "model") -> ModelSource:
        """Parse ``text``; ``latest`` becomes the newest finished run of task ``latest_of``."""
        source = cls.parse(text, key)
        if source.kind != "latest":
            return source
        return cls.parse(latest_run_id(tracking.tracking_uri, tracking.experiment, latest_of, key), key)

    @classmethod
    def registered(cls, name: str, version: int | str, key: str = "model") -> ModelSource:
        """Version ``version`` of the registered model ``name`` (``models:/<name>/<version>``)."""
        return cls(f"models:/{name}/{version}", "registered_model", key=key)

    @property
    def is_mlflow_model(self) -> bool:
        """A logged or registered pyfunc model (loadable with ``mlflow.pyfunc.load_model``)."""
        return self.kind in ("logged_model", "registered_model")

    def load_for_inference(self, tracking_uri: str) -> LoadedCheckpoint:
        """The model's weights, config and vocabulary, without the optimiser state: the one way a
        model is loaded to caption, evaluate or fine-tune from."""
        return load_checkpoint(self.checkpoint_folder(tracking_uri), with_training_state=False)

    def checkpoint_folder(self, tracking_uri: str) -> str:
        """A local folder holding the checkpoint (weights, config, vocabulary), downloaded if remote."""
        if self.kind == "latest":
            raise ValueError("resolve 'latest' to a run first (ModelSource.resolve)")
        if self.kind == "run":
            return self._run_checkpoint(tracking_uri)
        if self.is_mlflow_model:
            return self._model_checkpoint(tracking_uri)
        if self.kind == "uri":
            local = tempfile.mkdtemp(prefix="caponimage-ckpt-")
            storage.copy_dir(self.text, local)
            return local
        return str(Path(self.text.removeprefix("file://")).expanduser())

    def _run_checkpoint(self, tracking_uri: str) -> str:
        """The run's logged pyfunc model's checkpoint, or its loose ``checkpoint`` artifact (the
        runs of a sweep's trials and an ablation, and runs logged before models were)."""
        model_uri = logged_model_uri(self.run_id, tracking_uri)
        if model_uri is not None:
            return ModelSource(model_uri, "logged_model", self.run_id, self.key)._model_checkpoint(tracking_uri)
        mlflow.set_tracking_uri(tracking_uri)
        try:
            return mlflow.artifacts.download_artifacts(run_id=self.run_id, artifact_path=CHECKPOINT_ARTIFACT)
        except Exception as err:  # MLflow raises several types for a missing run or artifact
            raise ConfigError(
                self.key, f"run {self.run_id} has no logged model and no '{CHECKPOINT_ARTIFACT}' artifact: {err}"
            ) from err

    def _model_checkpoint(self, tracking_uri: str) -> str:
        """The checkpoint folder inside a logged or registered pyfunc model."""
        mlflow.set_tracking_uri(tracking_uri)
        try:
            root = mlflow.artifacts.download_artifacts(artifact_uri=self.text)
        except Exception as err:  # MLflow raises several types for an unknown model, version or alias
            raise self.not_found(tracking_uri, err) from err
        folder = Path(root) / "artifacts" / CHECKPOINT_ARTIFACT
        if not folder.is_dir():
            raise ConfigError(
                self.key, f"{self.text} is not a CapOnImage pyfunc model (no {CHECKPOINT_ARTIFACT} inside)"
            )
        return str(folder)

    def not_found(self, tracking_uri: str, err: Exception) -> ConfigError:
        """Why this model cannot be loaded, and, when nothing is registered under its name, what to run."""
        where = redact(tracking_uri)
        if self.kind == "registered_model":
            name = re.split(r"[/@]", self.text.removeprefix("models:/"))[0]
            try:
                MlflowClient(tracking_uri).get_registered_model(name)
            except MlflowException:
                return ConfigError(
                    self.key,
                    f"no model is registered as '{name}' at {where}: train and register one with `make run` "
                    "(or flows/finetune.py, flows/tune.py), set MLFLOW_TRACKING_URI to the store that has it, "
                    "or give a run id or a checkpoint folder",
                )
        return ConfigError(self.key, f"cannot load {self.text} from {where}: {err}")


def logged_model_id(source: str | None, tracking_uri: str) -> str | None:
    """The id (``m-...``) of the logged model a model source names: a run's newest logged model, a
    ``runs:/`` model, or the one a registered version was made from; None for a checkpoint folder or
    a run that logged none."""
    if not source:
        return None
    parsed = ModelSource.parse(source)
    if parsed.kind in ("run", "logged_model"):
        uri = logged_model_uri(parsed.run_id, tracking_uri)
        return uri.removeprefix("models:/") if uri else None
    if parsed.kind != "registered_model":
        return None
    path = parsed.text.removeprefix("models:/")
    if path.startswith("m-"):  # a logged model's own URI
        return path
    name, _, rest = path.partition("/")
    name, _, alias = name.partition("@")
    client = MlflowClient(tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, rest)
    except MlflowException:
        return None
    if version.model_id:
        return version.model_id
    if (version.source or "").startswith("models:/m-"):  # registered from the logged model's URI
        return version.source.removeprefix("models:/")
    uri = logged_model_uri(version.run_id, tracking_uri) if version.run_id else None
    return uri.removeprefix("models:/") if uri else None


def logged_model_uri(run_id: str, tracking_uri: str) -> str | None:
    """The URI of the newest model logged in a run (``models:/m-...``), if it logged one."""
    client = MlflowClient(tracking_uri)
    try:
        experiment = client.get_run(run_id).info.experiment_id
    except MlflowException:
        return None
    mlflow.set_tracking_uri(tracking_uri)
    found = mlflow.search_logged_models(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    newest = max(found, key=lambda m: m.creation_timestamp, default=None)
    return newest.model_uri if newest is not None else None
