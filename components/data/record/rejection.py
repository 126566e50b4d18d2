"""Why a record cannot be used: the reason, the field it names, and the image it belongs to.

Readers never die on one bad record: they raise ``RecordRejected`` for it, and the caller counts it
by reason (a ``Rejection``), or, in strict mode, stops with ``DatasetError`` naming image and field.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    "unsafe_id",  # an id no record, request or file may have (``untrusted.checked_id``)
    "bad_json",  # a JSON line from outside that does not parse ...
    "too_large",  # ... or is longer than ``untrusted.MAX_JSON_CHARS``
    "too_deep",  # ... or nests deeper than ``untrusted.MAX_JSON_DEPTH``
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
