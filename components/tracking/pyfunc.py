"""CapOnImage as an MLflow pyfunc model: weights, config and vocabulary inside; decoding in ``predict``.

Input: one row per image, with columns ``image`` (the encoded PNG or JPEG bytes), ``info`` (the
product info), ``boxes`` (the caption boxes as ``"x1_y1_x2_y2"``, fractions or pixels) and,
optionally, ``mask_boxes`` (other text on the image to black out) and ``id`` (a safe id, named in
errors). Output: a ``captions`` column, one caption per box in the order given, and an ``error``
column: empty for a captioned row; for a row that cannot be captioned (an undecodable image, a bad
box, too many boxes, an unsafe id) the field and the reason, its captions empty, while every other
row is captioned. Parameters: ``beam_size`` (1: greedy); ``candidates`` (captions per box to choose
from, best first, default 1); ``checks`` (comma-separated, of compliance, grounding, fit, read_back; ""
for none, the default); ``render`` (also return the published image). With checks, each box's caption
is the most likely candidate that passes them all (else the most likely, its failures named), and the
``verdicts`` column holds one JSON object per box (``components.publishing``); with ``render`` the
``rendered`` column holds the published PNG; ``forbid_banned`` (decoding never completes a term of the
compliance list).

    model = mlflow.pyfunc.load_model("models:/caponimage@champion")
    model.predict(frame, params={"beam_size": 3})["captions"]
"""

from __future__ import annotations

import json
import numbers
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

from components.data.record.rejection import RecordRejected
from components.data.record.untrusted import checked_id
from components.data.release.dataset import PreparedDataset
from components.data.release.table import head_rows
from components.data.transforms.requests import (
    RequestError,
    dataset_request,
    encode_request,
    request_image,
    stack_rows,
)
from components.model.checkpoint import CHECKPOINT_ARTIFACT, STATE_FILE
from components.model.inference import Captioner
from components.publishing.choice import CHECKS, Publisher
from components.publishing.compliance import forbidden_sequences
from components.publishing.records import build_publisher, png_bytes, publish_record
from components.tracking.runs import TrackedRun
from components.tracking.sources import ModelSource

BATCH_IMAGES = 16
COMPONENTS_DIR = Path(__file__).resolve().parents[1]


class CapOnImageModel(mlflow.pyfunc.PythonModel):
    def __init__(self):
        self.captioner = None
        self.reader = None  # the OCR engine read-back uses, loaded on first use

    def load_context(self, context) -> None:
        self.captioner = Captioner.from_checkpoint(context.artifacts[CHECKPOINT_ARTIFACT])

    @classmethod
    def from_checkpoint(cls, folder: str | Path) -> CapOnImageModel:
        """The same model without MLflow (a checkpoint folder), for local captioning."""
        model = cls()
        model.captioner = Captioner.from_checkpoint(folder)
        return model

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        beam_size, options = beam_param(params), publish_params(params)
        forbidden = forbidden_sequences(self.captioner.tokenizer) if options.forbid_banned else ()
        frame = model_input.to_dict("records")
        captions: list[list[str]] = [[] for _ in frame]
        verdicts: list[list[str]] = [[] for _ in frame]
        rendered: list[bytes] = [b""] * len(frame)
        errors: list[str] = [""] * len(frame)
        encoded: list[tuple[int, dict, tuple]] = []  # (row number, its request, (its encoded row, its record))
        for number, row in enumerate(frame):
            try:
                request = row_request(number, row)
                encoded.append(
                    (number, request, encode_request(request, self.captioner.tokenizer, self.captioner.spec))
                )
            except RequestError as err:
                errors[number] = str(err)
        for start in range(0, len(encoded), BATCH_IMAGES):
            chunk = encoded[start : start + BATCH_IMAGES]
            rows = stack_rows([row for _, _, (row, _) in chunk])
            if not options.publishing:
                captioned = self.captioner.caption(rows, beam_size, forbidden)[1]
                for (number, _, _), row_captions in zip(chunk, captioned, strict=True):
                    captions[number] = row_captions
                continue
            per_image = self.captioner.candidates(rows, max(beam_size, options.candidates), forbidden)
            publisher = self.publisher(options.checks)
            for (number, request, (_, record)), per_box in zip(chunk, per_image, strict=True):
                image = request_image(request["image"], request["id"])
                chosen, picture = publish_record(publisher, image, record, [c[: options.candidates] for c in per_box])
                captions[number] = [v.caption for v in chosen]
                verdicts[number] = [json.dumps(v.as_dict(), ensure_ascii=False) for v in chosen]
                rendered[number] = png_bytes(picture) if options.render else b""
        return pd.DataFrame({"captions": captions, "error": errors, "verdicts": verdicts, "rendered": rendered})

    def publisher(self, checks: tuple[str, ...]) -> Publisher:
        """The publishing checks, with one OCR engine per model, made on the first call that reads back."""
        publisher = build_publisher(checks, reader=self.reader)
        self.reader = publisher.reader or self.reader
        return publisher


class LocalModel:
    """A checkpoint folder behind the pyfunc model's ``predict(frame, params)``."""

    def __init__(self, folder: str):
        self.model = CapOnImageModel.from_checkpoint(folder)

    def predict(self, data: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.model.predict(None, data, params)


def load_pyfunc(source: ModelSource, tracking_uri: str):
    """``models:/...`` or ``runs:/<id>/<model>``: the MLflow pyfunc model; an MLflow run id or a
    checkpoint folder / URI: the same model from the checkpoint (``LocalModel``)."""
    if not source.is_mlflow_model:
        return LocalModel(source.checkpoint_folder(tracking_uri))
    mlflow.set_tracking_uri(tracking_uri)
    try:
        return mlflow.pyfunc.load_model(source.text)
    except Exception as err:  # MLflow raises several types for an unknown model, version or alias
        raise source.not_found(tracking_uri, err) from err


MAX_BEAM = 16  # wider beams cost memory and time and change short captions no more


def beam_param(params: dict[str, Any] | None) -> int:
    """The ``beam_size`` parameter, or ``ValueError`` naming it: a whole number from 1 (greedy) to 16."""
    return whole_number_param(params, "beam_size", "1 (greedy)")


def whole_number_param(params: dict[str, Any] | None, name: str, low: str = "1") -> int:
    """A whole-number parameter from 1 to ``MAX_BEAM`` (default 1), or ``ValueError`` naming it; numpy
    integers, as MLflow may pass them, are accepted."""
    value = (params or {}).get(name, 1)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value):
        raise ValueError(f"parameter {name}: expected a whole number (got {value!r})")
    if not 1 <= int(value) <= MAX_BEAM:
        raise ValueError(f"parameter {name}: must be from {low} to {MAX_BEAM} (got {value!r})")
    return int(value)


@dataclass(frozen=True)
class PublishParams:
    candidates: int = 1
    checks: tuple[str, ...] = ()
    render: bool = False
    forbid_banned: bool = False

    @property
    def publishing(self) -> bool:
        return bool(self.checks) or self.candidates > 1 or self.render


def publish_params(params: dict[str, Any] | None) -> PublishParams:
    """``candidates``, ``checks``, ``render`` and ``forbid_banned``, or ``ValueError`` naming the parameter."""
    count = whole_number_param(params, "candidates")
    params = params or {}
    text = params.get("checks", "")
    if not isinstance(text, str):
        raise ValueError(f"parameter checks: expected a comma-separated string (got {text!r})")
    checks = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"parameter checks: unknown {unknown}; choose from {list(CHECKS)}")
    if "read_back" in checks and "fit" not in checks:
        raise ValueError("parameter checks: read_back needs fit (it reads what fit drew)")
    flags = {}
    for name in ("render", "forbid_banned"):
        flags[name] = params.get(name, False)
        if not isinstance(flags[name], bool | numpy.bool_):
            raise ValueError(f"parameter {name}: expected true or false (got {flags[name]!r})")
    return PublishParams(count, checks, bool(flags["render"]), bool(flags["forbid_banned"]))


def row_request(number: int, row: dict[str, Any]) -> dict[str, Any]:
    """One input row as a captioning request, or ``RequestError`` naming the row and the field."""
    request_id = row.get("id")
    request_id = f"row {number}" if request_id is None or _missing(request_id) else str(request_id)
    try:
        checked_id(request_id, "id")
    except RecordRejected as rejected:
        raise RequestError(f"row {number}", "id", rejected.reason, rejected.detail) from rejected
    for name, required in (("image", True), ("info", True), ("boxes", True), ("mask_boxes", False)):
        if required and (name not in row or _missing(row[name])):
            raise RequestError(request_id, name, "missing_key", f"row {number} has no '{name}'")
    if not isinstance(row["image"], bytes | bytearray):
        raise RequestError(request_id, "image", "bad_type", f"expected bytes, got {type(row['image']).__name__}")
    lists = {}
    for name in ("boxes", "mask_boxes"):
        value = row.get(name)
        if value is None or _missing(value):
            lists[name] = []
        elif isinstance(value, str | bytes) or not hasattr(value, "__len__"):
            raise RequestError(request_id, name, "bad_type", f"expected a list, got {type(value).__name__}")
        else:
            lists[name] = list(value)
    return {"id": request_id, "image": bytes(row["image"]), "info": row["info"], **lists}


def _missing(value: Any) -> bool:
    """A cell pandas left empty (``None`` or NaN), not a list or a string."""
    return value is None or (isinstance(value, float) and pd.isna(value))


def signature() -> ModelSignature:
    inputs = Schema(
        [
            ColSpec("binary", "image"),
            ColSpec("string", "info"),
            ColSpec(Array("string"), "boxes"),
            ColSpec(Array("string"), "mask_boxes", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(Array("string"), "captions"),
            ColSpec("string", "error", required=False),
            ColSpec(Array("string"), "verdicts", required=False),
            ColSpec("binary", "rendered", required=False),
        ]
    )
    params = [
        ParamSpec("beam_size", "integer", 1),
        ParamSpec("candidates", "integer", 1),
        ParamSpec("checks", "string", ""),
        ParamSpec("render", "boolean", False),
        ParamSpec("forbid_banned", "boolean", False),
    ]
    return ModelSignature(inputs, outputs, ParamSchema(params))


def requirements() -> list[str]:
    """What serving needs, pinned to this environment's versions."""
    return [
        f"{name}=={version(name)}"
        for name in (
            "mlflow",
            "torch",
            "torchvision",
            "numpy",
            "pandas",
            "pillow",
            "pyyaml",
            "pyarrow",
            "pydantic",
            "opencc",
            "jieba",
            "rapidocr-onnxruntime",
        )  # fmt: skip
    ]


def log_pyfunc(run: TrackedRun, checkpoint_folder: str | Path, example: pd.DataFrame, name: str = "model"):
    """Log the checkpoint as a pyfunc model into ``run``; MLflow's ``ModelInfo``. (``log_model`` has no
    run-id form: it logs into the active run, which ``run``, open in ``tracked_run``, must be.)"""
    active = mlflow.active_run()
    if active is None or active.info.run_id != run.run_id:
        raise RuntimeError(f"log the model inside the tracked_run of {run.run_id} (the active run is another)")
    staged = Path(tempfile.mkdtemp(prefix="caponimage-model-")) / CHECKPOINT_ARTIFACT
    shutil.copytree(checkpoint_folder, staged, ignore=shutil.ignore_patterns(STATE_FILE))  # no optimiser state
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__).with_name("model_code.py")),  # models from code: no pickle
        artifacts={CHECKPOINT_ARTIFACT: str(staged)},
        code_paths=[str(COMPONENTS_DIR)],
        signature=signature(),
        input_example=(example, {"beam_size": 1}),
        pip_requirements=requirements(),
    )


def example_request(image_bytes: bytes, info: str, boxes: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"image": [image_bytes], "info": [info], "boxes": [boxes]})


def dataset_example(dataset: PreparedDataset) -> pd.DataFrame:
    """The input example of a model trained on ``dataset``: the first image of its val split."""
    index = dataset.table
    first = head_rows(index, "val" if "val" in index.splits else "train", limit=1)[0]
    request = dataset_request(dataset.images_root, first["image_id"], first["record"])
    return example_request(request["image"], request["info"], request["boxes"])


def log_checkpoint_model(run: TrackedRun, checkpoint_folder: str, dataset: PreparedDataset, name: str) -> str:
    """A training run's last checkpoint as the pyfunc model of ``run``, named ``name`` (the task that
    trained it: ``pretrain``, ``finetune``, as the UI's model list shows it), its input example an
    image of the ``dataset`` it trained on; the model's URI (the weights, config and vocabulary are
    logged once, in the model)."""
    return log_pyfunc(run, checkpoint_folder, dataset_example(dataset), name).model_uri
