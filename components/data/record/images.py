"""Opening the image a record or a request names, under the root it must stay in.

The one opener for the dataset check, the training pipeline, evaluation pictures and captioning
requests, local or on an object store. What can go wrong is a ``RecordRejected`` naming the field
``image`` with one reason: ``unsafe_path`` (the path escapes its root), ``missing_image``,
``corrupt_image`` (the bytes do not decode) or ``oversized_image`` (more pixels than
``MAX_IMAGE_PIXELS``, checked from the header before any pixel is decoded).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from components import storage
from components.data.record.rejection import RecordRejected
from components.errors import UnsafePathError

# What Pillow raises for bytes that are not a readable image.
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError)
# The one pixel limit: larger images are refused before decoding (a product photo is a few million
# pixels; a decompression bomb declares billions in a few bytes).
MAX_IMAGE_PIXELS = 64_000_000


@dataclass(frozen=True)
class OpenedImage:
    location: str  # where it was read: a local path or a URI
    data: bytes  # the file's bytes, as stored
    image: Image.Image  # decoded


def image_digest(data: bytes) -> str:
    """The SHA-256 of an image file's bytes: the same image, whatever its name."""
    return hashlib.sha256(data).hexdigest()


def image_location(root: str, relative: str) -> str:
    """``root/relative``, or ``unsafe_path`` if ``relative`` climbs out (``..``, absolute, symlinks)."""
    try:
        return storage.safe_join(root, relative)
    except UnsafePathError as err:
        raise RecordRejected("image", "unsafe_path", str(err)) from err


def read_image_bytes(root: str, relative: str) -> tuple[str, bytes]:
    """(location, bytes) of the image at ``root/relative``."""
    location = image_location(root, relative)
    try:
        return location, storage.read_bytes(location)
    except FileNotFoundError as err:
        raise RecordRejected("image", "missing_image", f"{location} does not exist") from err
    except OSError as err:
        if storage.is_folder(location):
            raise RecordRejected("image", "missing_image", f"{location} is a folder, not an image") from err
        raise RecordRejected("image", "corrupt_image", f"{location} cannot be read: {err}") from err


def _open_checked(data: bytes, location: str) -> Image.Image:
    """The image with its header read and its size checked; pixels not decoded yet."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise RecordRejected("image", "oversized_image", f"{location}: {err}") from err
    except DECODE_ERRORS as err:
        raise RecordRejected("image", "corrupt_image", f"{location}: {err}") from err
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise RecordRejected(
            "image", "oversized_image", f"{location}: {width}x{height} is over {MAX_IMAGE_PIXELS:,} pixels"
        )
    return image


def decode_image(data: bytes, location: str) -> Image.Image:
    """The decoded image (pixels loaded), or ``corrupt_image`` / ``oversized_image``."""
    image = _open_checked(data, location)
    try:
        image.load()
    except DECODE_ERRORS as err:
        raise RecordRejected("image", "corrupt_image", f"{location}: {err}") from err
    return image


def open_image(root: str, relative: str) -> OpenedImage:
    """Read and decode the image at ``root/relative``."""
    location, data = read_image_bytes(root, relative)
    return OpenedImage(location, data, decode_image(data, location))


def image_size(root: str, relative: str) -> tuple[int, int]:
    """(width, height) of the image at ``root/relative``, its file checked whole (``verify``) without
    decoding the pixels: the cheap check of a dataset."""
    location, data = read_image_bytes(root, relative)
    image = _open_checked(data, location)
    try:
        image.verify()
    except DECODE_ERRORS as err:
        raise RecordRejected("image", "corrupt_image", f"{location}: {err}") from err
    return image.size
