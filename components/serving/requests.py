"""A captioning request (an image, its text boxes, the product info) to the model's encoded row.

Boxes are the release format's ``"x1_y1_x2_y2"`` strings, as fractions or pixels (detected as in
the dataset: any value above 1). Bad input raises ``RequestError`` naming the request and the field.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from components.data.boxes import format_box, is_pixel_box_set, normalise_box, parse_box
from components.data.pipeline import EncodeSpec, encode_record
from components.data.release import ImageRecord
from components.data.tokenizer import Tokenizer
from components.errors import BoxError, DatasetError


class RequestError(DatasetError):
    """A captioning request that cannot be used: which request, which field, why."""


def box_text(box: Any) -> str:
    """A box as ``"x1_y1_x2_y2"``: strings pass through; four numbers are formatted."""
    if isinstance(box, str):
        return box
    if isinstance(box, Sequence) and len(box) == 4:
        return format_box([float(v) for v in box])
    raise BoxError(f"expected 'x1_y1_x2_y2' or four numbers, got {box!r}")


def open_image(data: bytes, request_id: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError) as err:
        raise RequestError(request_id, "image", "corrupt_image", str(err)) from err
    return image.convert("RGB")


def request_record(
    request_id: str, info: str, boxes: Sequence[Any], mask_boxes: Sequence[Any], size: tuple[int, int]
) -> ImageRecord:
    """The request as an ``ImageRecord`` with one empty caption per box (to be generated)."""
    if not isinstance(info, str):
        raise RequestError(request_id, "info", "bad_type", f"expected a string, got {type(info).__name__}")
    if len(boxes) == 0:
        raise RequestError(request_id, "boxes", "no_captions", "a request needs at least one box")
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
    if any(len(r["boxes"]) > spec.max_boxes for r in requests):
        raise RequestError(
            next(str(r["id"]) for r in requests if len(r["boxes"]) > spec.max_boxes),
            "boxes",
            "too_many_boxes",
            f"at most {spec.max_boxes} boxes per image",
        )
    rows, records = [], []
    for request in requests:
        request_id = str(request["id"])
        image = open_image(request["image"], request_id)
        mask = request.get("mask_boxes")
        record = request_record(request_id, request["info"], list(request["boxes"]), list(mask or ()), image.size)
        rows.append(encode_record(record, image, tokenizer, spec, random.Random(0)))
        records.append(record)
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}, records


def dataset_request(images_root: str, image_id: str, record_json: str) -> dict[str, Any]:
    """A release-format record and its image file as a captioning request (its own text boxes to
    caption, every listed text masked). ``RecordRejected`` naming the field if it cannot be used."""
    import json

    from components import storage
    from components.data.release import CAPTIONS_FILE, RecordRejected, parse_record_value
    from components.errors import UnsafePathError

    if not record_json:
        raise RecordRejected(CAPTIONS_FILE, "missing_record", "listed in a split file but has no record")
    try:
        location = storage.safe_join(images_root, f"{image_id}.png")
        data = storage.read_bytes(location)
    except UnsafePathError as err:
        raise RecordRejected("image", "unsafe_path", str(err)) from err
    except FileNotFoundError as err:
        raise RecordRejected("image", "missing_image", f"{location} does not exist") from err
    try:
        size = open_image(data, image_id).size
    except RequestError as err:
        raise RecordRejected("image", "corrupt_image", err.detail) from err
    record = parse_record_value(image_id, json.loads(record_json), size)
    return {
        "id": image_id,
        "source": location,
        "image": data,
        "info": record.info,
        "boxes": [format_box(b) for b in record.caption_boxes],
        "mask_boxes": [format_box(b) for b in record.all_boxes],
        "references": list(record.captions),
    }
