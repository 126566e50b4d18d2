"""A captioning request (an image, its text boxes, the product info) to the model's encoded row.

Boxes are the release format's ``"x1_y1_x2_y2"`` strings, as fractions or pixels (detected as in
the dataset: any value above 1). Bad input raises ``RequestError`` naming the request and the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from components import storage
from components.data.record.boxes import format_box, is_pixel_box_set, normalise_box, parse_box
from components.data.record.images import decode_image, open_image
from components.data.record.rejection import RecordRejected
from components.data.record.tokenizer import Tokenizer
from components.data.record.untrusted import checked_id, json_object, parse_json
from components.data.release.format import CAPTIONS_FILE, ImageRecord, parse_record_value
from components.data.transforms.encoding import EncodeSpec, encode_record
from components.errors import BoxError, ConfigError, DatasetError

MAX_BOXES = EncodeSpec.max_boxes  # boxes one image's encoding holds


class RequestError(DatasetError):
    """A captioning request that cannot be used: which request, which field, why."""


def box_text(box: Any) -> str:
    """A box as ``"x1_y1_x2_y2"``: strings pass through; four numbers are formatted."""
    if isinstance(box, str):
        return box
    if isinstance(box, Sequence | np.ndarray) and len(box) == 4:
        try:
            return format_box([float(v) for v in box])
        except (TypeError, ValueError) as err:
            raise BoxError(f"expected four numbers, got {box!r}") from err
    raise BoxError(f"expected 'x1_y1_x2_y2' or four numbers, got {box!r}")


def request_image(data: bytes, request_id: str) -> Image.Image:
    """A request's image bytes decoded to RGB, or ``RequestError`` naming the request."""
    try:
        return decode_image(data, request_id).convert("RGB")
    except RecordRejected as rejected:
        raise RequestError(request_id, "image", rejected.reason, rejected.detail) from rejected


def request_record(
    request_id: str, info: str, boxes: Sequence[Any], mask_boxes: Sequence[Any], size: tuple[int, int]
) -> ImageRecord:
    """The request as an ``ImageRecord`` with one empty caption per box (to be generated)."""
    if not isinstance(info, str):
        raise RequestError(request_id, "info", "bad_type", f"expected a string, got {type(info).__name__}")
    if len(boxes) == 0:
        raise RequestError(request_id, "boxes", "no_captions", "a request needs at least one box")
    if len(boxes) > MAX_BOXES:
        raise RequestError(
            request_id,
            "boxes",
            "too_many_boxes",
            f"{len(boxes)} boxes; the model takes at most {MAX_BOXES}",
        )
    raw = {}
    for name, values in (("boxes", boxes), ("mask_boxes", mask_boxes)):
        raw[name] = []
        for i, box in enumerate(values):
            try:
                raw[name].append(parse_box(box_text(box)))
            except BoxError as err:
                raise RequestError(request_id, f"{name}[{i}]", "bad_box", str(err)) from err
    pixel_size = size if is_pixel_box_set(raw["boxes"] + raw["mask_boxes"]) else None
    normalised = {}
    for name, values in raw.items():
        normalised[name] = []
        for i, one in enumerate(values):
            try:
                normalised[name].append(normalise_box(one, pixel_size))
            except BoxError as err:
                raise RequestError(request_id, f"{name}[{i}]", "bad_box", str(err)) from err
    return ImageRecord(
        image_id=request_id,
        info=info,
        all_boxes=tuple(normalised["mask_boxes"]),  # caption boxes are masked too (ImageRecord.mask_boxes)
        caption_boxes=tuple(normalised["boxes"]),
        captions=("",) * len(normalised["boxes"]),
    )


def encode_requests(
    requests: Sequence[dict[str, Any]], tokenizer: Tokenizer, spec: EncodeSpec
) -> tuple[dict[str, np.ndarray], list[ImageRecord]]:
    """Requests ``{"id", "image": bytes, "info", "boxes", "mask_boxes"?}`` to stacked encoded rows."""
    encoded = [encode_request(request, tokenizer, spec) for request in requests]
    return stack_rows([row for row, _ in encoded]), [record for _, record in encoded]


def stack_rows(rows: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Encoded rows (``EncodedRow`` columns) as one batch: each column stacked."""
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def encode_request(
    request: dict[str, Any], tokenizer: Tokenizer, spec: EncodeSpec
) -> tuple[dict[str, Any], ImageRecord]:
    """One request to its encoded row (``EncodedRow`` columns) and its record; ``RequestError``
    naming the field if it cannot be encoded."""
    request_id = str(request["id"])
    if len(request["boxes"]) > spec.max_boxes:
        raise RequestError(request_id, "boxes", "too_many_boxes", f"at most {spec.max_boxes} boxes per image")
    image = request_image(request["image"], request_id)
    mask = request.get("mask_boxes")
    mask = [] if mask is None else list(mask)  # a list, or a numpy array out of a Ray Data batch
    record = request_record(request_id, request["info"], list(request["boxes"]), mask, image.size)
    return encode_record(record, image, tokenizer, spec), record


def dataset_request(images_root: str, image_id: str, record_json: str) -> dict[str, Any]:
    """A release-format record and its image file as a captioning request (its own text boxes to
    caption, every listed text masked). ``RecordRejected`` naming the field if it cannot be used."""
    if not record_json:
        raise RecordRejected(CAPTIONS_FILE, "missing_record", "listed in a split file but has no record")
    opened = open_image(images_root, f"{image_id}.png")
    record = parse_record_value(image_id, json.loads(record_json), opened.image.size)
    return {
        "id": image_id,
        "source": opened.location,
        "image": opened.data,
        "info": record.info,
        "boxes": [format_box(b) for b in record.caption_boxes],
        "mask_boxes": [format_box(b) for b in record.all_boxes],
        "references": list(record.captions),
    }


def file_request(root: str, line_number: int, line: str) -> dict[str, Any]:
    """One line of a requests file: ``{"image": path, "boxes": [...], "info": "...", "mask_boxes"?, "id"?}``;
    image paths are relative to the file's folder and may not leave it."""
    value = json_object(line, ("image", "boxes", "info"), f"line {line_number}")
    request_id = str(value.get("id", value["image"]))
    try:
        opened = open_image(root, str(value["image"]))
    except RecordRejected as err:  # named by the request, not only by its line
        raise RecordRejected(err.rejection_field, err.reason, f"request {request_id!r}: {err.detail}") from err
    checked_id(request_id, "id")  # after the image: an id that defaults to a bad path names the path's fault
    try:
        boxes = [box_text(b) for b in value["boxes"]]
        mask = [box_text(b) for b in value.get("mask_boxes") or []]
        request_record(request_id, value["info"], boxes, mask, opened.image.size)
    except RequestError as err:
        raise RecordRejected(err.field, err.reason, f"request {request_id!r}: {err.detail}") from err
    except Exception as err:  # a box that is neither a string nor four numbers
        raise RecordRejected("boxes", "bad_box", f"request {request_id!r}: {err}") from err
    return {
        "id": request_id,
        "source": opened.location,
        "image": opened.data,
        "info": value["info"],
        "boxes": boxes,
        "mask_boxes": mask,
    }


def read_named_file(location: str, key: str) -> bytes:
    """The bytes of a file named on the command line (``--image``, ``--boxes``, ...); ``ConfigError``
    naming the option when the name holds a NUL byte or an unpaired surrogate, is a folder, or is absent."""
    if storage.unnameable(location):
        raise ConfigError(key, f"{location!r} holds a NUL byte or a character that is not valid UTF-8")
    if storage.is_folder(location):
        raise ConfigError(key, f"{location} is a folder, not a file")
    try:
        return storage.read_bytes(location)
    except FileNotFoundError as err:
        raise ConfigError(key, f"{location} does not exist") from err


def read_json(location: str, key: str) -> Any:
    """A JSON file named on the command line; ``ConfigError`` naming the option if unreadable or not JSON."""
    try:
        return parse_json(read_named_file(location, key).decode("utf-8"), key)
    except UnicodeDecodeError as err:
        raise ConfigError(key, f"{location} is not JSON: {err}") from err
    except RecordRejected as rejected:
        detail = f"{rejected.reason}: {rejected.detail}"
        raise ConfigError(key, f"{location} is not JSON within limits: {detail}") from rejected


def single_request(image: str, boxes_file: str | None, record_file: str | None, info: str | None) -> dict[str, Any]:
    """The one image's request from ``--image``, ``--boxes`` / ``--record`` and ``--info``: boxes as a
    JSON list, an object ``{boxes, info?, mask_boxes?}`` or a release-format record."""
    spec = read_json(record_file, "--record") if record_file else read_json(boxes_file, "--boxes")
    if record_file:
        spec = {"boxes": spec.get("ocr_locs"), "mask_boxes": spec.get("all_locs"), "info": spec.get("info")}
    elif isinstance(spec, list):
        spec = {"boxes": spec}
    info = info if info is not None else spec.get("info")
    if not isinstance(spec.get("boxes"), list) or not spec["boxes"]:
        raise ConfigError("boxes", "no boxes: give a non-empty list of boxes")
    if not isinstance(info, str):
        raise ConfigError("info", "the product info is missing: give --info or an 'info' in the JSON")
    data = read_named_file(image, "--image")
    request_id = Path(image).stem
    try:
        boxes = [box_text(b) for b in spec["boxes"]]
        mask = [box_text(b) for b in spec.get("mask_boxes") or []]
    except Exception as err:
        raise ConfigError("boxes", str(err)) from err
    if len(boxes) > MAX_BOXES:  # before the model loads
        raise RequestError(
            request_id, "boxes", "too_many_boxes", f"{len(boxes)} boxes; the model takes at most {MAX_BOXES}"
        )
    return {"id": request_id, "source": image, "image": data, "info": info, "boxes": boxes, "mask_boxes": mask}
