"""The online captioning API's requests and answers, without Ray: a caller's JSON body or form fields
checked field by field into one pyfunc input row and its parameters, and a captioned row back to JSON.

A request::

    {"image": "<base64 PNG or JPEG>", "info": "product info",
     "boxes": ["x1_y1_x2_y2", [x1, y1, x2, y2], ...],       fractions or pixels, in caption order
     "mask_boxes": [...],                                  optional: other text to black out
     "id": "...",                                          optional: named in errors and logs
     "params": {"beam_size": 1, "candidates": 6, "checks": "compliance,grounding,fit,read_back",
                "forbid_banned": false, "render": true}}   optional: the pyfunc model's parameters

Anything wrong is a ``BadRequest`` naming the field (``image``, ``boxes[1]``, ``params.beam_size``),
answered 400 before the request reaches a batch: one caller's bad image never fails another's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.data.record.rejection import RecordRejected
from components.data.record.untrusted import checked_id, printable
from components.data.transforms.requests import RequestError, box_text, request_image, request_record
from components.errors import BoxError
from components.tracking.pyfunc import beam_param, publish_params

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # a product photo is a few hundred kilobytes
PARAMS = ("beam_size", "candidates", "checks", "forbid_banned", "render")
_PARAMETER_NAMED = re.compile(r"^parameter (\w+):")


class BadRequest(ValueError):
    """A request that cannot be captioned: which field, why. Answered 400 with both."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message

    def body(self) -> dict[str, str]:
        return {"error": self.message, "field": self.field}


@dataclass(frozen=True)
class CaptionQuery:
    """One checked request: the pyfunc model's input row and its parameters (hashable, so that a batch
    groups the queries that can share one ``predict`` call)."""

    id: str
    image: bytes
    info: str
    boxes: tuple[str, ...]
    mask_boxes: tuple[str, ...]
    params: tuple[tuple[str, Any], ...]

    def row(self) -> dict[str, Any]:
        """The model's input row (the id stays here: the model's signature has no id column)."""
        return {"image": self.image, "info": self.info, "boxes": list(self.boxes), "mask_boxes": list(self.mask_boxes)}

    @property
    def render(self) -> bool:
        return bool(dict(self.params).get("render", False))


def query_from_json(body: Any, defaults: Mapping[str, Any] = ()) -> CaptionQuery:
    """A JSON body (already parsed) as a checked query; ``defaults`` are the service's parameters."""
    if not isinstance(body, dict):
        raise BadRequest("body", f"expected a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - {"image", "info", "boxes", "mask_boxes", "id", "params"})
    if unknown:
        raise BadRequest(unknown[0], "unknown field; expected image, info, boxes, mask_boxes, id, params")
    if "image" not in body:
        raise BadRequest("image", "missing: the image as base64 text")
    image = _base64_image(body["image"])
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise BadRequest("params", f"expected an object, got {type(params).__name__}")
    return checked_query(body.get("id"), image, body.get("info"), body.get("boxes"), body.get("mask_boxes"),
                         {**dict(defaults), **params})  # fmt: skip


def query_from_form(fields: Mapping[str, str], image: bytes, defaults: Mapping[str, Any] = ()) -> CaptionQuery:
    """A multipart upload: the image file, ``info`` text, and ``boxes`` / ``mask_boxes`` / ``params``
    as JSON text (boxes may also be one ``x1_y1_x2_y2`` per line)."""
    boxes = _form_boxes(fields.get("boxes"), "boxes")
    mask_boxes = _form_boxes(fields.get("mask_boxes"), "mask_boxes")
    params = _form_json(fields.get("params"), "params", {})
    if not isinstance(params, dict):
        raise BadRequest("params", f"expected a JSON object, got {type(params).__name__}")
    return checked_query(fields.get("id"), image, fields.get("info"), boxes, mask_boxes, {**dict(defaults), **params})


def checked_query(
    request_id: Any, image: bytes, info: Any, boxes: Any, mask_boxes: Any, params: Mapping[str, Any]
) -> CaptionQuery:
    """Every field checked as the model will use it: the image decodes, each box parses and lies in the
    image, the parameters are the model's and in range."""
    request_id = _request_id(request_id)
    if len(image) > MAX_IMAGE_BYTES:
        raise BadRequest("image", f"{len(image)} bytes; at most {MAX_IMAGE_BYTES}")
    if info is None:
        raise BadRequest("info", "missing: the product info text")
    box_lists = {}
    for name, value in (("boxes", boxes), ("mask_boxes", mask_boxes if mask_boxes is not None else [])):
        if not isinstance(value, list):
            raise BadRequest(name, f"expected a list of boxes, got {type(value).__name__}")
        box_lists[name] = tuple(_box(box, f"{name}[{i}]") for i, box in enumerate(value))
    try:
        picture = request_image(image, request_id)
        request_record(request_id, info, box_lists["boxes"], box_lists["mask_boxes"], picture.size)
    except RequestError as err:
        raise BadRequest(err.field, f"{err.reason}: {err.detail}" if err.detail else err.reason) from err
    return CaptionQuery(request_id, image, info, box_lists["boxes"], box_lists["mask_boxes"], checked_params(params))


def answer(query: CaptionQuery, output: Mapping[str, Any], model: str, version: str) -> dict[str, Any]:
    """One row of the pyfunc model's output as the JSON answer: captions in box order, each box's
    verdict where the publishing checks ran, the published PNG (base64) when asked for, and which
    model version answered."""
    raw = output.get("verdicts")
    verdicts = [json.loads(v) for v in (list(raw) if raw is not None else [])]  # a list or an array
    result: dict[str, Any] = {
        "id": query.id,
        "model": model,
        "model_version": version,
        "captions": [str(c) for c in output["captions"]],
        "verdicts": verdicts or None,
    }
    if query.render:
        result["rendered_png"] = base64.b64encode(bytes(output["rendered"])).decode("ascii")
    return result


def _request_id(value: Any) -> str:
    if value is None:
        return f"request-{uuid.uuid4().hex[:12]}"
    try:
        return checked_id(value, "id")
    except RecordRejected as rejected:
        raise BadRequest("id", f"{rejected.reason}: {rejected.detail}") from rejected


def _base64_image(value: Any) -> bytes:
    if not isinstance(value, str):
        raise BadRequest("image", f"expected base64 text, got {type(value).__name__}")
    text = value.partition(",")[2] if value.startswith("data:") else value  # a data: URL from a page
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise BadRequest("image", f"{len(text)} characters of base64; at most {MAX_IMAGE_BYTES} bytes decoded")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadRequest("image", f"not base64: {err}") from err


def _box(value: Any, field: str) -> str:
    try:
        return box_text(value)
    except BoxError as err:
        raise BadRequest(field, f"bad_box: {err}") from err


def _form_json(text: str | None, field: str, default: Any) -> Any:
    if text is None or not text.strip():
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BadRequest(field, f"not JSON: {err.msg} at {err.pos} in {printable(text)}") from err


def _form_boxes(text: str | None, field: str) -> list[Any]:
    """Boxes from a form field: a JSON list, or one ``x1_y1_x2_y2`` per line (as pasted)."""
    if text is not None and text.strip() and not text.lstrip().startswith("["):
        return [line.strip() for line in text.splitlines() if line.strip()]
    return _form_json(text, field, [])


def checked_params(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise BadRequest(f"params.{unknown[0]}", f"unknown parameter; expected one of {list(PARAMS)}")
    try:
        beam_param(params)
        publish_params(params)
    except ValueError as err:
        named = _PARAMETER_NAMED.match(str(err))
        field = f"params.{named.group(1)}" if named else "params"
        raise BadRequest(field, str(err).partition(": ")[2] or str(err)) from err
    return tuple(sorted(params.items()))
