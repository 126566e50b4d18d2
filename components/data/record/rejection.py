"""Why a record cannot be used: the reason, the field it names, and the image it belongs to.

Readers never die on one bad record: they raise ``RecordRejected`` for it, and the caller counts it
by reason (a ``Rejection``), or, in strict mode, stops with ``DatasetError`` naming image and field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.errors import DatasetError

REASONS = (
    "missing_record",  # listed in a split file, absent from ref_captions.json
    "duplicate_id",  # listed again in the same split file (the first is kept)
    "missing_key",
    "bad_type",
    "length_mismatch",
    "bad_box",
    "bad_caption",
    "no_captions",
    "unsafe_path",
    "missing_image",
    "corrupt_image",
    "oversized_image",  # more pixels than data.images.MAX_IMAGE_PIXELS
    "too_many_boxes",  # a captioning request with more boxes than an image's encoding holds
)


@dataclass(frozen=True)
class Rejection:
    """A record that could not be used, and why."""

    image_id: str
    field: str
    reason: str
    detail: str = ""

    def error(self) -> DatasetError:
        return DatasetError(self.image_id, self.field, self.reason, self.detail)


class RecordRejected(Exception):
    """A record cannot be used: which field, why (one of ``REASONS``), and details."""

    def __init__(self, field: str, reason: str, detail: str = ""):
        super().__init__(f"{field}: {reason}: {detail}")
        self.rejection_field, self.reason, self.detail = field, reason, detail

    def rejection(self, image_id: str) -> Rejection:
        return Rejection(image_id, self.rejection_field, self.reason, self.detail)


def json_object(text: str, required: Sequence[str], where: str = "the line") -> dict[str, Any]:
    """One JSON-lines entry that must be an object with ``required`` keys, or ``RecordRejected``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordRejected("<line>", "bad_json", str(err)) from err
    if not isinstance(value, dict):
        raise RecordRejected("<line>", "bad_type", f"expected an object, got {type(value).__name__}")
    for key in required:
        if key not in value:
            raise RecordRejected(key, "missing_key", f"{where} has no '{key}'")
    return value
