"""Loading a model for captioning from any source a user gives, captioning one request, and writing
the results as they would be published (``flows/caption.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from components import storage
from components.config import PublishSection
from components.data.transforms.requests import RequestError, request_image, request_record
from components.publishing.fit import MIN_FONT_FRACTION
from components.publishing.records import published_image
from components.tracking.pyfunc import load_pyfunc
from components.tracking.sources import ModelSource

REQUEST_COLUMNS = ("image", "info", "boxes", "mask_boxes")


def load_captioning_model(source: str, tracking_uri: str):
    """The model ``source`` names (``--model``), behind ``predict(frame, params)``."""
    return load_pyfunc(ModelSource.parse(source, "--model"), tracking_uri)


def caption_request(
    request: dict[str, Any], source: str, tracking_uri: str, beam_size: int = 1, publish: PublishSection | None = None
) -> dict[str, Any]:
    """One request (``data.transforms.requests.single_request``) with its captions, chosen among
    ``publish.candidates`` by its checks (with a verdict per box) where checks are given."""
    model = load_captioning_model(source, tracking_uri)
    frame = pd.DataFrame({k: [request[k]] for k in REQUEST_COLUMNS})
    params: dict[str, Any] = {"beam_size": beam_size}
    if publish is not None and publish.checks:
        params.update(candidates=publish.candidates, checks=",".join(publish.checks))
    if publish is not None and publish.forbid_banned:
        params.update(forbid_banned=True)
    output = model.predict(frame, params=params)
    if output["error"][0]:  # the model names the field; the flow exits with the data-error code
        raise RequestError(str(request["id"]), "request", "not_captioned", str(output["error"][0]))
    verdicts = [json.loads(v) for v in output["verdicts"][0]]
    return {**request, "captions": list(output["captions"][0]), "verdicts": verdicts}


def draw_result(result: dict[str, Any], out: Path, min_font_fraction: float = MIN_FONT_FRACTION) -> Path:
    """The image as it would be published, saved in ``out``: the old text removed from the caption
    boxes and the captions set in them at the largest size that fits, in the most readable colour (a
    caption with no legible size is left out: its verdict says why)."""
    data = result["image"] if "image" in result else storage.read_bytes(result["source"])
    image = request_image(data, str(result["id"]))
    record = request_record(str(result["id"]), result["info"], result["boxes"], result["mask_boxes"], image.size)
    published = published_image(image, record.caption_boxes, record.info, result["captions"], min_font_fraction)
    path = out / f"{Path(str(result['id'])).stem}_captioned.png"
    published.save(path)
    return path


def write_captions(
    results: list[dict[str, Any]], out: Path, draw: int, min_font_fraction: float = MIN_FONT_FRACTION
) -> tuple[list[dict[str, Any]], list[Path]]:
    """``out/captions.json`` (plain JSON: Ray Data hands lists back as numpy arrays), with each box's
    verdict where the publishing checks ran, and the first ``draw`` images as published; (the entries
    written, the pictures)."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = [draw_result(r, out, min_font_fraction) for r in results[:draw]]
    entries = []
    for r in results:
        entry = {
            "id": str(r["id"]),
            "info": str(r["info"]),
            "boxes": [str(b) for b in r["boxes"]],
            "captions": [str(c) for c in r["captions"]],
        }
        if r.get("verdicts"):
            entry["verdicts"] = list(r["verdicts"])
        entries.append(entry)
    (out / "captions.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1), "utf-8")
    return entries, drawn


def verdict_lines(entries: list[dict[str, Any]]) -> list[str]:
    """How many captions passed every check, and the failures by check; nothing without checks."""
    verdicts = [v for entry in entries for v in entry.get("verdicts", [])]
    if not verdicts:
        return []
    failed: dict[str, int] = {}
    for verdict in verdicts:
        for check in verdict["failed"]:
            failed[check] = failed.get(check, 0) + 1
    passed = sum(v["passed"] for v in verdicts)
    chosen = sum(v["rank"] > 0 for v in verdicts)
    lines = [f"{passed} of {len(verdicts)} captions pass every check ({chosen} chosen below the most likely)"]
    return lines + [f"  failing {check}: {count}" for check, count in failed.items()]
