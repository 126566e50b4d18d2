"""Loading a model for captioning from any source a user gives, captioning one request, and drawing
and writing the results (``flows/caption.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from components import storage
from components.data.tokenizer import guess_mode
from components.evaluation.rendering import draw_captions, masked_image
from components.serving.pyfunc import CapOnImageModel
from components.serving.requests import request_image, request_record
from components.tracking.sources import ModelSource

REQUEST_COLUMNS = ("image", "info", "boxes", "mask_boxes")


class LocalModel:
    """A checkpoint folder behind the pyfunc model's ``predict(frame, params)``."""

    def __init__(self, folder: str):
        self.model = CapOnImageModel.from_checkpoint(folder)

    def predict(self, data: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.model.predict(None, data, params)


def load_captioning_model(source: str, tracking_uri: str):
    """``models:/...`` or ``runs:/<id>/<model>``: the MLflow pyfunc model; an MLflow run id or a
    checkpoint folder / URI: the same model from the checkpoint."""
    parsed = ModelSource.parse(source, "--model")
    if not parsed.is_mlflow_model:
        return LocalModel(parsed.checkpoint_folder(tracking_uri))
    mlflow.set_tracking_uri(tracking_uri)
    try:
        return mlflow.pyfunc.load_model(source)
    except Exception as err:  # MLflow raises several types for an unknown model, version or alias
        raise parsed.not_found(tracking_uri, err) from err


def caption_request(request: dict[str, Any], source: str, tracking_uri: str, beam_size: int = 1) -> dict[str, Any]:
    """One request (``serving.requests.single_request``) with its captions."""
    model = load_captioning_model(source, tracking_uri)
    frame = pd.DataFrame({k: [request[k]] for k in REQUEST_COLUMNS})
    captions = model.predict(frame, params={"beam_size": beam_size})["captions"][0]
    return {**request, "captions": list(captions)}


def draw_result(result: dict[str, Any], out: Path) -> Path:
    """The image with its boxes masked and the generated captions drawn in them, saved in ``out``."""
    data = result["image"] if "image" in result else storage.read_bytes(result["source"])
    image = request_image(data, str(result["id"]))
    record = request_record(str(result["id"]), result["info"], result["boxes"], result["mask_boxes"], image.size)
    lang = "zh" if guess_mode(result["captions"] + [result["info"]]) == "char" else "en"
    picture = draw_captions(masked_image(image, record.mask_boxes), record.caption_boxes, result["captions"], lang)
    path = out / f"{Path(str(result['id'])).stem}_captioned.png"
    picture.save(path)
    return path


def write_captions(results: list[dict[str, Any]], out: Path, draw: int) -> tuple[list[dict[str, Any]], list[Path]]:
    """``out/captions.json`` (plain JSON: Ray Data hands lists back as numpy arrays) and the first
    ``draw`` images with their captions drawn; (the entries written, the pictures)."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = [draw_result(r, out) for r in results[:draw]]
    entries = [
        {
            "id": str(r["id"]),
            "info": str(r["info"]),
            "boxes": [str(b) for b in r["boxes"]],
            "captions": [str(c) for c in r["captions"]],
        }
        for r in results
    ]
    (out / "captions.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1), "utf-8")
    return entries, drawn
