"""Loading a model for captioning from any source a user gives, captioning one request, and drawing
and writing the results (``flows/caption.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from components import storage
from components.data.transforms.requests import request_image, request_record
from components.evaluation.rendering import draw_captions, masked_image
from components.publishing.records import caption_lang
from components.tracking.pyfunc import load_pyfunc
from components.tracking.sources import ModelSource

REQUEST_COLUMNS = ("image", "info", "boxes", "mask_boxes")


def load_captioning_model(source: str, tracking_uri: str):
    """The model ``source`` names (``--model``), behind ``predict(frame, params)``."""
    return load_pyfunc(ModelSource.parse(source, "--model"), tracking_uri)


def caption_request(request: dict[str, Any], source: str, tracking_uri: str, beam_size: int = 1) -> dict[str, Any]:
    """One request (``data.transforms.requests.single_request``) with its captions."""
    model = load_captioning_model(source, tracking_uri)
    frame = pd.DataFrame({k: [request[k]] for k in REQUEST_COLUMNS})
    captions = model.predict(frame, params={"beam_size": beam_size})["captions"][0]
    return {**request, "captions": list(captions)}


def draw_result(result: dict[str, Any], out: Path) -> Path:
    """The image with its boxes masked and the generated captions drawn in them, saved in ``out``."""
    data = result["image"] if "image" in result else storage.read_bytes(result["source"])
    image = request_image(data, str(result["id"]))
    record = request_record(str(result["id"]), result["info"], result["boxes"], result["mask_boxes"], image.size)
    lang = caption_lang(list(result["captions"]) + [result["info"]])
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
